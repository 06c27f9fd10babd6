package org.sparkrlhf.planner;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.planner.graph.Algorithms;
import org.sparkrlhf.planner.graph.CallKind;
import org.sparkrlhf.planner.graph.DataflowGraph;
import org.sparkrlhf.planner.graph.DriverHook;
import org.sparkrlhf.planner.graph.ModelCall;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GraphTest {
    private static Set<String> deps(DataflowGraph g, String call) {
        return Arrays.stream(g.dependencies(g.indexOf(call))).mapToObj(i -> g.call(i).name()).collect(Collectors.toSet());
    }

    @Test
    void ppoEdgesFollowKeys() {
        DataflowGraph g = Algorithms.ppo(4);
        assertEquals(Set.of(), deps(g, "actor_gen"));
        for (String inf : List.of("reward_inf", "ref_inf", "critic_inf")) {
            assertEquals(Set.of("actor_gen"), deps(g, inf));
        }
        Set<String> train = Set.of("actor_gen", "reward_inf", "ref_inf", "critic_inf");
        assertEquals(train, deps(g, "actor_train"));
        assertEquals(train, deps(g, "critic_train"));
        assertEquals(List.of("packed_prompts"), g.datasetKeys());
        assertEquals(List.of("actor", "reward", "ref", "critic"), g.roles());
        assertTrue(g.isTrainable("actor"));
        assertTrue(g.isTrainable("critic"));
        assertFalse(g.isTrainable("ref"));
        assertEquals(g.indexOf("actor_train"), g.homeCall("actor"));
        assertEquals(g.indexOf("ref_inf"), g.homeCall("ref"));
        assertEquals(4, g.call(g.indexOf("actor_train")).trainSteps());
        assertEquals(CallKind.GENERATE, g.call(g.indexOf("actor_gen")).kind());
        int[] order = g.topologicalOrder();
        int posGen = indexIn(order, g.indexOf("actor_gen"));
        for (String later : List.of("reward_inf", "ref_inf", "critic_inf", "actor_train", "critic_train")) {
            assertTrue(indexIn(order, g.indexOf(later)) > posGen, later);
        }
        assertEquals(List.of(g.indexOf("actor_gen"), g.indexOf("actor_train")), g.callsOnRole("actor"));
    }

    private static int indexIn(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }

    @Test
    void everyAlgorithmBuilds() {
        for (String a : Algorithms.NAMES) {
            DataflowGraph g = Algorithms.of(a, 2);
            assertTrue(g.size() >= 1, a);
            for (int i = 0; i < g.size(); i++) {
                for (int d : g.dependencies(i)) {
                    assertTrue(indexIn(g.topologicalOrder(), d) < indexIn(g.topologicalOrder(), i), a);
                }
            }
        }
        DataflowGraph grpo = Algorithms.of("grpo", 4);
        assertFalse(grpo.roles().contains("critic"));
        assertEquals(Set.of("actor_gen", "reward_inf", "ref_inf"), deps(grpo, "actor_train"));
        DataflowGraph remax = Algorithms.of("remax", 4);
        assertEquals(Set.of("actor_greedy_gen"), deps(remax, "reward_greedy_inf"));
        assertEquals(Set.of("actor_gen", "reward_inf", "reward_greedy_inf", "ref_inf"), deps(remax, "actor_train"));
        // without a reward model, a hook on the driver writes the rewards: actor_train waits for what it reads
        DataflowGraph byFunction = Algorithms.of("grpo", 4, false);
        assertFalse(byFunction.roles().contains("reward"));
        assertEquals("reward_fn", byFunction.producerOf("rewards"));
        assertEquals("group_advantages", byFunction.producerOf("advantages"));
        assertEquals(Set.of("actor_gen", "ref_inf"), deps(byFunction, "actor_train"));
        assertEquals(List.of("packed_prompts", "group_ids"), byFunction.datasetKeys());
        var hookCycle = assertThrows(IllegalArgumentException.class, () -> new DataflowGraph("x",
                List.of(ModelCall.train("t", "m", List.of("a"), 1)),
                List.of(new DriverHook("h1", List.of("b"), List.of("a")), new DriverHook("h2", List.of("a"), List.of("b")))));
        assertTrue(hookCycle.getMessage().contains("cycle"), hookCycle.getMessage());
        DataflowGraph dpo = Algorithms.of("gr-dpo", 4);
        assertEquals(Set.of("ref_inf"), deps(dpo, "actor_train"));
        assertEquals(List.of("packed_input_ids", "prompt_mask", "group_ids"), dpo.datasetKeys());
        assertEquals(1, Algorithms.sft().size());
        assertEquals("reward", Algorithms.rewardModeling().call(0).role());
        assertThrows(IllegalArgumentException.class, () -> Algorithms.of("a2c", 4));
    }

    @Test
    void badGraphsAreRejectedWithTheCallNamed() {
        var twoWriters = assertThrows(IllegalArgumentException.class, () -> new DataflowGraph("x", List.of(
                ModelCall.inference("a", "m", List.of("in"), List.of("k")),
                ModelCall.inference("b", "m", List.of("in"), List.of("k")))));
        assertTrue(twoWriters.getMessage().contains("'k'"), twoWriters.getMessage());
        var cycle = assertThrows(IllegalArgumentException.class, () -> new DataflowGraph("x", List.of(
                ModelCall.inference("a", "m", List.of("k2"), List.of("k1")),
                ModelCall.inference("b", "m", List.of("k1"), List.of("k2")))));
        assertTrue(cycle.getMessage().contains("cycle"), cycle.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new DataflowGraph("x", List.of(
                ModelCall.inference("a", "m", List.of("in"), List.of("k1")),
                ModelCall.inference("a", "m", List.of("in"), List.of("k2")))));
        assertThrows(IllegalArgumentException.class, () -> new ModelCall("g", "m", CallKind.GENERATE, List.of(), List.of(), 2));
    }

    /** A frozen role keeps its other calls and loses its train call; a train call whose output is read cannot go. */
    @Test
    void withoutTrainingDropsTheFrozenRolesTrainCalls() {
        DataflowGraph ppo = Algorithms.ppo(4);
        DataflowGraph frozen = ppo.withoutTraining(Set.of("critic", "ref"));
        assertEquals(List.of("actor_gen", "reward_inf", "ref_inf", "critic_inf", "actor_train"),
                frozen.calls().stream().map(ModelCall::name).toList());
        assertFalse(frozen.isTrainable("critic"));
        assertEquals(frozen.indexOf("critic_inf"), frozen.homeCall("critic"));
        assertEquals(ppo.hooks(), frozen.hooks());
        assertTrue(ppo == ppo.withoutTraining(Set.of("ref")), "nothing to drop: the same graph");
        DataflowGraph chained = new DataflowGraph("chained", List.of(
                new ModelCall("m_train", "m", CallKind.TRAIN, List.of("in"), List.of("stats"), 1),
                ModelCall.inference("n_inf", "n", List.of("stats"), List.of("out"))));
        var e = assertThrows(IllegalArgumentException.class, () -> chained.withoutTraining(Set.of("m")));
        assertTrue(e.getMessage().contains("'stats'"), e.getMessage());
    }
}
