package org.sparkrlhf.gpuexec.cli;

import org.sparkrlhf.gpuexec.backend.SamplingParams;
import org.sparkrlhf.gpuexec.backend.cpu.CpuBackend;
import org.sparkrlhf.gpuexec.model.GenerationResult;
import org.sparkrlhf.gpuexec.model.Generator;
import org.sparkrlhf.gpuexec.model.LlamaModel;
import org.sparkrlhf.gpuexec.model.ModelConfig;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/** {@code generate}: one prompt, printed completion (the decoded new tokens, special tokens skipped). */
final class GenerateCommand {
    private GenerateCommand() {
    }

    static void run(String[] args, PrintStream out) {
        CliArgs a = new CliArgs("generate", args, 0, Set.of("model", "prompt", "max-new-tokens", "temperature", "top-p", "top-k", "seed"));
        Path modelDir = Path.of(a.required("model"));
        String prompt = a.required("prompt");
        int maxNew = a.integer("max-new-tokens", 32, 0);
        float temperature = a.number("temperature", 0f);
        float topP = a.number("top-p", 1f);
        int topK = a.integer("top-k", 0, 0);
        long seed = a.longValue("seed", 0);
        if (temperature < 0) throw new InputException("generate: option --temperature must be >= 0, got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new InputException("generate: option --top-p must be in (0, 1], got " + topP);
        if (!Files.isDirectory(modelDir)) throw new InputException(modelDir + ": no such model directory");
        ModelConfig config = ModelConfig.read(modelDir.resolve("config.json"));
        if (config.head() != ModelConfig.Head.CAUSAL_LM) {
            throw new InputException(modelDir.resolve("config.json") + ": architecture " + config.architecture()
                    + " has no LM head; generate needs a causal LM");
        }
        int[] eos = ModelConfig.eosFromGenerationConfig(modelDir.resolve("generation_config.json"));
        if (eos == null) eos = config.eosTokenIds();
        int pad = config.padTokenId() >= 0 ? config.padTokenId() : eos.length > 0 ? eos[0] : 0;
        try (HfTokenizer tokenizer = HfTokenizer.open(modelDir)) {
            int[] ids = tokenizer.encodeInts(prompt);
            if (ids.length == 0) throw new InputException("generate: option --prompt: the prompt gives no tokens");
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] >= config.vocabSize()) {
                    throw new InputException("generate: option --prompt: token " + i + " has id " + ids[i]
                            + " outside the model's vocabulary [0, " + config.vocabSize() + ")");
                }
            }
            try (CpuBackend backend = new CpuBackend(); LlamaModel model = LlamaModel.load(backend, modelDir);
                 Generator generator = new Generator(model)) {
                Generator.Options o = new Generator.Options(maxNew, new SamplingParams(temperature, topK, topP), seed, eos, pad, false);
                GenerationResult r = generator.generate(new int[][]{ids}, o);
                out.println(tokenizer.decode(r.tokens()[0]));
            }
        }
    }
}
