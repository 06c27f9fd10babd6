package org.sparkrlhf.jobs;

import org.sparkrlhf.gpuexec.cli.EngineCli;
import org.sparkrlhf.jobs.plan.RunPlanCommand;
import org.sparkrlhf.jobs.profile.ProfileCommand;
import org.sparkrlhf.jobs.report.ReportCommand;
import org.sparkrlhf.jobs.train.TrainCommand;
import org.sparkrlhf.planner.cli.PlanCommand;

import java.util.Arrays;

/** The entry point of {@code bin/spark-rlhf} and of the spark-submit jar: one subcommand a run. */
public final class Main {
    private static final String USAGE = """
            usage: spark-rlhf <command> [options]
              logprobs --model DIR --input IN.jsonl --output OUT.jsonl
                                    per-token log-probabilities of each input line
              generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T]
                       [--top-p P] [--top-k K] [--seed S]
                                    prints the completion of one prompt
              train RUN.yaml [--resume]
                                    runs a training job (SFT so far) from a run config; embedded
                                    (Spark local[*]) or under spark-submit
              profile RUN.yaml      profiles the run's models on its executors (the engine's layer,
                                    decoding and head times, the per-call overhead) into
                                    OUTPUT/profile/ and the cache, for train and plan to use
              plan [scenario flags | --config PLANNER.yaml | --config RUN.yaml [--json]]
                                    an execution plan for an RLHF dataflow graph; with a run
                                    config, the plan that run would start with
              report OUTPUT [--run RUN_ID] [--html FILE]
                                    one self-contained HTML page of a run's curves, timeline and
                                    samples, from its Delta tables (default OUTPUT/report.html)
              test                  runs the test suite (bin/spark-rlhf only)
            """;

    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help") || args[0].equals("help")) {
            System.out.print(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        return switch (args[0]) {
            case "logprobs", "generate" -> EngineCli.run(args);
            case "plan" -> RunPlanCommand.isRunConfig(rest) ? RunPlanCommand.run(rest, System.out, System.err)
                    : PlanCommand.run(rest);
            case "train" -> TrainCommand.run(rest);
            case "report" -> ReportCommand.run(rest);
            case "profile" -> ProfileCommand.run(rest);
            default -> {
                System.err.println("spark-rlhf: unknown command '" + args[0] + "'");
                System.err.print(USAGE);
                yield 2;
            }
        };
    }
}
