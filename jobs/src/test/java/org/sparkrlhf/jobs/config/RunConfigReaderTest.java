package org.sparkrlhf.jobs.config;

import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RunConfigReaderTest {
    @TempDir
    Path dir;
    private Path model;

    @BeforeEach
    void tinyModel() throws IOException {
        model = dir.resolve("tiny");
        Files.createDirectories(model);
        // 4 attention heads, 2 key/value heads, 2 layers
        Files.writeString(model.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128}
                """);
    }

    private RunConfig read(String yaml) throws IOException {
        Path file = dir.resolve("run.yaml");
        Path rewardModel = dir.resolve("tiny-reward");
        Files.createDirectories(rewardModel);
        Files.writeString(rewardModel.resolve("config.json"), """
                {"architectures": ["LlamaForSequenceClassification"], "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128, "num_labels": 1}
                """);
        Files.writeString(file, yaml.replace("REWARD_MODEL", rewardModel.toString()).replace("MODEL", model.toString()));
        return new RunConfigReader(new Configuration()).read("file:" + file);
    }

    private String error(String yaml) {
        return assertThrows(ConfigException.class, () -> read(yaml)).getMessage();
    }

    private static final String GRPO = """
            name: grpo-test
            algorithm: grpo
            seed: 7
            iterations: 3
            output: /tmp/out
            models:
              actor: {path: MODEL}
              ref:
                path: MODEL
            reward:
              function: arithmetic
            data:
              task: arithmetic
              batch_size: 4
            grpo:
              group_size: 4
            """;

    @Test
    void readsAValidGrpoConfigWithDefaults() throws IOException {
        RunConfig c = read(GRPO);
        assertEquals(Algorithm.GRPO, c.algorithm());
        assertEquals(7, c.seed());
        assertEquals(3, c.iterations());
        assertEquals(model.toString(), c.models().get("actor").path());
        assertTrue(c.models().get("actor").trainable());
        assertFalse(c.models().get("ref").trainable());
        assertEquals("arithmetic", c.reward().function());
        assertEquals(4, c.data().batchSize());
        assertEquals(4, c.grpo().groupSize());
        assertEquals(0.04, c.grpo().klCoef());
        assertNull(c.ppo());
        assertEquals("search", c.plan().mode());
        assertEquals("local[*]", c.spark().master());
        assertEquals(RunConfigReader.callsOf(Algorithm.GRPO, c.reward()), java.util.List.of("actor_gen", "ref_inf", "actor_train"));
    }

    @Test
    void unknownKeyIsNamedByItsFullPathAndLine() {
        String message = error(GRPO.replace("  actor: {path: MODEL}", "  actor: {path: MODEL, paht: x}"));
        assertTrue(message.contains("run.yaml:7: models.actor.paht: unknown key"), message);
        assertTrue(message.contains("known keys here: path, trainable"), message);
    }

    @Test
    void unknownTopLevelSection() {
        String message = error(GRPO + "optimiser:\n  lr: 1.0e-5\n");
        assertTrue(message.contains(":18: optimiser: unknown key"), message);
    }

    @Test
    void missingModelIsNamed() {
        String message = error(GRPO.replace("  ref:\n    path: MODEL\n", ""));
        assertTrue(message.contains("models.ref: required by grpo but missing"), message);
    }

    @Test
    void modelFolderWithoutConfigJson() {
        String message = error(GRPO.replace("  ref:\n    path: MODEL", "  ref:\n    path: " + dir.resolve("nowhere")));
        assertTrue(message.contains("run.yaml:9: models.ref.path:"), message);
        assertTrue(message.contains("config.json not found"), message);
    }

    @Test
    void modelRoleNotUsedByTheAlgorithm() {
        String message = error(GRPO.replace("  ref:\n", "  critic: {path: MODEL}\n  ref:\n"));
        assertTrue(message.contains("models.critic: model role 'critic' is not used by grpo"), message);
    }

    @Test
    void rewardNeedsAModelOrAFunctionButNotBoth() {
        assertTrue(error(GRPO.replace("reward:\n  function: arithmetic\n", ""))
                .contains("models.reward: grpo needs a reward"));
        assertTrue(error(GRPO.replace("  ref:\n", "  reward: {path: REWARD_MODEL}\n  ref:\n"))
                .contains("give either reward.function or models.reward, not both"));
    }

    @Test
    void sectionOfAnotherAlgorithm() {
        String message = error(GRPO + "ppo:\n  gamma: 1.0\n");
        assertTrue(message.contains("ppo: section is for ppo but the algorithm is grpo"), message);
    }

    @Test
    void wrongTypesAndRanges() {
        assertTrue(error(GRPO.replace("iterations: 3", "iterations: three"))
                .contains("run.yaml:4: iterations: expected a whole number, got 'three'"));
        assertTrue(error(GRPO.replace("group_size: 4", "group_size: 1")).contains("grpo.group_size: must be >= 2"));
        assertTrue(error(GRPO + "generation:\n  top_p: 1.5\n").contains("generation.top_p: must be in (0, 1]"));
    }

    @Test
    void ppoWithAdaptiveK3Kl() throws IOException {
        String ppo = """
                algorithm: ppo
                output: /tmp/out
                models:
                  actor: {path: MODEL}
                  ref: {path: MODEL}
                  critic: {path: MODEL}
                  reward: {path: REWARD_MODEL}
                data: {path: prompts.jsonl}
                ppo:
                  kl: {type: adaptive, coef: 0.1, target: 6.0, horizon: 10000, estimator: k3}
                """;
        RunConfig c = read(ppo);
        assertTrue(c.ppo().kl().adaptive());
        assertEquals("k3", c.ppo().kl().estimator());
        assertEquals(0.95, c.ppo().lambda());
        assertEquals("jsonl", c.data().format());
        assertTrue(c.reward().fromModel());
        assertTrue(c.models().get("critic").trainable());
        String fixedWithTarget = error(ppo.replace("type: adaptive", "type: fixed"));
        assertTrue(fixedWithTarget.contains("ppo.kl.target: only an adaptive KL controller has a target"), fixedWithTarget);
        assertTrue(error(ppo.replace("estimator: k3", "estimator: k2")).contains("unknown KL estimator 'k2'"));
    }

    private static final String PPO = """
            algorithm: ppo
            output: /tmp/out
            models:
              actor: {path: MODEL}
              ref: {path: MODEL}
              critic: {path: MODEL}
            reward: {function: arithmetic}
            data: {task: arithmetic, batch_size: 8}
            optimizer: {lr: 1.0e-5}
            ppo: {mini_batches: 2}
            """;

    @Test
    void ppoWithARewardFunctionAndDefaults() throws IOException {
        RunConfig c = read(PPO);
        assertEquals(Algorithm.PPO, c.algorithm());
        assertFalse(c.reward().fromModel());
        assertEquals(1.0e-5, c.ppo().criticLr(), "the critic's learning rate defaults to the actor's");
        assertEquals(2, c.ppo().miniBatches());
        assertEquals(0.05, c.ppo().kl().coef());
        assertEquals("k1", c.ppo().kl().estimator());
        assertFalse(c.ppo().kl().adaptive());
        assertTrue(c.ppo().whitenAdvantages());
        assertEquals(java.util.List.of("actor_gen", "ref_inf", "critic_inf", "actor_train", "critic_train"),
                RunConfigReader.callsOf(Algorithm.PPO, c.reward()));
        assertEquals(3.0e-5, read(PPO.replace("ppo: {mini_batches: 2}", "ppo: {critic_lr: 3.0e-5}")).ppo().criticLr());
    }

    /** A critic given trainable: false is run frozen: no critic_train call in the run's graph or its manual plan. */
    @Test
    void aFrozenCriticHasNoTrainCall() throws IOException {
        RunConfig c = read(PPO.replace("critic: {path: MODEL}", "critic: {path: REWARD_MODEL, trainable: false}"));
        assertFalse(c.models().get("critic").trainable());
        assertEquals(java.util.Set.of("ref", "critic"), RunConfigReader.frozenRoles(c.models()));
        assertEquals(java.util.List.of("actor_gen", "ref_inf", "critic_inf", "actor_train"),
                RunConfigReader.callsOf(Algorithm.PPO, c.reward(), c.models()));
        var graph = org.sparkrlhf.jobs.plan.RunScenario.graph(c);
        assertEquals(java.util.List.of("actor_gen", "ref_inf", "critic_inf", "actor_train"),
                graph.calls().stream().map(org.sparkrlhf.planner.graph.ModelCall::name).toList());
        assertFalse(graph.isTrainable("critic"));
        assertTrue(graph.isTrainable("actor"));
        // the hooks still read the frozen critic's values
        assertTrue(graph.hooks().stream().anyMatch(h -> h.inputKeys().contains("values")));
    }

    /** trainable: false is refused, naming file:line, for the model an algorithm exists to train and for a critic with no value head. */
    @Test
    void trainableFalseThatCannotWork() {
        String actor = error(GRPO.replace("actor: {path: MODEL}", "actor: {path: MODEL, trainable: false}"));
        assertTrue(actor.contains("run.yaml:7: models.actor.trainable: grpo trains the actor model"), actor);
        String ppoActor = error(PPO.replace("actor: {path: MODEL}", "actor: {path: MODEL, trainable: false}"));
        assertTrue(ppoActor.contains("run.yaml:4: models.actor.trainable: ppo trains the actor model"), ppoActor);
        String rw = error("""
                algorithm: rw
                output: /tmp/out
                models:
                  reward:
                    path: MODEL
                    trainable: false
                data: {path: pairs.jsonl}
                """);
        assertTrue(rw.contains("run.yaml:6: models.reward.trainable: rw trains the reward model"), rw);
        String causalCritic = error(PPO.replace("critic: {path: MODEL}", "critic: {path: MODEL, trainable: false}"));
        assertTrue(causalCritic.contains("run.yaml:6: models.critic.trainable: a critic that is not trained must be a "
                + "value model"), causalCritic);
        String ref = error(PPO.replace("ref: {path: MODEL}", "ref: {path: MODEL, trainable: true}"));
        assertTrue(ref.contains("models.ref.trainable: the ref model is never trained"), ref);
    }

    @Test
    void ppoModelErrors() {
        String noCritic = error(PPO.replace("  critic: {path: MODEL}\n", ""));
        assertTrue(noCritic.contains("models.critic: required by ppo but missing"), noCritic);
        assertTrue(noCritic.contains("the actor's checkpoint, which gets a fresh value head"), noCritic);
        String noReward = error(PPO.replace("reward: {function: arithmetic}\n", ""));
        assertTrue(noReward.contains("models.reward: ppo needs a reward: give models.reward.path"), noReward);
        String causalReward = error(PPO.replace("reward: {function: arithmetic}\n", "")
                .replace("  critic: {path: MODEL}\n", "  critic: {path: MODEL}\n  reward: {path: MODEL}\n"));
        assertTrue(causalReward.contains("models.reward.path: " + model + " is not a reward model"), causalReward);
        String both = error(PPO.replace("  critic: {path: MODEL}\n", "  critic: {path: MODEL}\n  reward: {path: REWARD_MODEL}\n"));
        assertTrue(both.contains("give either reward.function or models.reward, not both"), both);
    }

    @Test
    void ppoModelsMustShareTheActorsVocabulary() throws IOException {
        Path other = dir.resolve("other-vocab");
        Files.createDirectories(other);
        Files.writeString(other.resolve("config.json"), """
                {"architectures": ["LlamaForSequenceClassification"], "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "num_labels": 1}
                """);
        String message = error(PPO.replace("  critic: {path: MODEL}", "  critic: {path: " + other + "}"));
        assertTrue(message.contains("models.critic.path: vocab_size 256 differs from the actor's 128"), message);
    }

    @Test
    void ppoMiniBatchesAndRanges() {
        String tooMany = error(PPO.replace("ppo: {mini_batches: 2}", "ppo: {mini_batches: 9}"));
        assertTrue(tooMany.contains("ppo.mini_batches: 9 mini-batches of a batch of data.batch_size = 8"), tooMany);
        assertTrue(error(PPO.replace("ppo: {mini_batches: 2}", "ppo: {lambda: 1.5}")).contains("ppo.lambda: must be in [0, 1]"));
        assertTrue(error(PPO.replace("ppo: {mini_batches: 2}", "ppo: {critic_lr: 0}")).contains("ppo.critic_lr: must be > 0"));
        assertTrue(error(PPO.replace("ppo: {mini_batches: 2}", "ppo: {value_clp: 0.2}")).contains("ppo.value_clp: unknown key"));
    }

    private static final String MANUAL = GRPO + """
            plan:
              mode: manual
              calls:
                actor_gen:   {devices: [0, 1], dp: 2}
                ref_inf:     {devices: [2], dp: 1}
                actor_train: {devices: [0, 1, 2, 3], dp: 1, tp: 2, pp: 2, micro_batches: 2}
            """;

    @Test
    void manualLayouts() throws IOException {
        RunConfig c = read(MANUAL);
        RunConfig.CallLayout train = c.plan().calls().get("actor_train");
        assertEquals(java.util.List.of(0, 1, 2, 3), train.devices());
        assertEquals(2, train.tp());
        assertEquals(2, train.pp());
    }

    @Test
    void layoutsThatCannotWork() {
        String product = error(MANUAL.replace("{devices: [0, 1], dp: 2}", "{devices: [0, 1, 2], dp: 2}"));
        assertTrue(product.contains("plan.calls.actor_gen: dp * tp * pp = 2 * 1 * 1 = 2 but the call has 3 devices"), product);
        String tp = error(MANUAL.replace("dp: 1, tp: 2, pp: 2", "dp: 1, tp: 4, pp: 1"));
        assertTrue(tp.contains("plan.calls.actor_train.tp: tp = 4 does not divide the model's 4 attention heads and 2 key/value heads"), tp);
        String pp = error(MANUAL.replace("dp: 1, tp: 2, pp: 2, micro_batches: 2", "dp: 1, tp: 1, pp: 4, micro_batches: 4"));
        assertTrue(pp.contains("pp = 4 is more than the model's 2 layers"), pp);
        String missing = error(MANUAL.replace("    ref_inf:     {devices: [2], dp: 1}\n", ""));
        assertTrue(missing.contains("plan.calls.ref_inf: missing"), missing);
        String unknown = error(MANUAL.replace("ref_inf:", "critic_inf:"));
        assertTrue(unknown.contains("no call 'critic_inf' in grpo"), unknown);
        String twice = error(MANUAL.replace("[0, 1], dp: 2", "[1, 1], dp: 2"));
        assertTrue(twice.contains("device 1 is listed twice"), twice);
    }

    @Test
    void fileErrors() {
        String notFound = assertThrows(ConfigException.class,
                () -> new RunConfigReader(new Configuration()).read("file:" + dir.resolve("missing.yaml"))).getMessage();
        assertTrue(notFound.contains("missing.yaml: run config not found"), notFound);
        String badYaml = error("algorithm: [grpo\n");
        assertTrue(badYaml.contains("not valid YAML"), badYaml);
        String duplicate = error(GRPO + "seed: 8\n");
        assertTrue(duplicate.contains("seed: key given twice"), duplicate);
    }
}
