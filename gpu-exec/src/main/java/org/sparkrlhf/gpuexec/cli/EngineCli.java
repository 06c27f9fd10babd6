package org.sparkrlhf.gpuexec.cli;

import org.sparkrlhf.gpuexec.checkpoint.CheckpointException;

import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.Arrays;

/**
 * The engine's commands, {@code logprobs} and {@code generate} (bin/spark-rlhf calls
 * {@link #run}). Bad input (a missing or corrupt checkpoint, an unsupported architecture, a
 * malformed input line, a token id out of range, a bad option) prints one line naming the file,
 * line and field on stderr and returns 2; nothing half-written is left behind.
 */
public final class EngineCli {
    static final String USAGE = String.join("\n",
            "usage:",
            "  logprobs --model DIR --input IN.jsonl --output OUT.jsonl [--batch-size N]",
            "      each input line {\"input_ids\": [...]} or {\"text\": \"...\"}; each output line is the input plus",
            "      \"token_logprobs\" with token_logprobs[t] = log p(ids[t+1] | ids[0..t])",
            "  generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]",
            "      prints the completion; temperature 0 (the default) is greedy");

    private EngineCli() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command; args[0] is {@code logprobs} or {@code generate}. Returns the exit status. */
    public static int run(String[] args) {
        return run(args, System.out, System.err);
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h")) {
            (args.length == 0 ? err : out).println(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        try {
            switch (args[0]) {
                case "logprobs" -> LogprobsCommand.run(rest, err);
                case "generate" -> GenerateCommand.run(rest, out);
                default -> throw new InputException("unknown command '" + args[0] + "' (logprobs, generate; --help for usage)");
            }
            out.flush();
            return 0;
        } catch (InputException | CheckpointException e) {
            err.println("error: " + e.getMessage());
            return 2;
        } catch (IllegalArgumentException e) {
            // tokenizer, config or shape checks below the command: still bad input
            err.println("error: " + e.getMessage());
            return 2;
        } catch (UncheckedIOException e) {
            err.println("error: " + e.getMessage());
            return 1;
        } catch (RuntimeException e) {
            err.println("error: internal error: " + e);
            return 1;
        }
    }
}
