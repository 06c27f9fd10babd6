package org.sparkrlhf.datasets.tables;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.apache.spark.sql.functions.*;
import static org.sparkrlhf.datasets.tables.Schemas.*;

/** The {@code rollouts} table: one row per generated response, with everything the algorithms computed on it. */
public final class RolloutsTable implements TableLayout<RolloutRow> {
    public static final RolloutsTable LAYOUT = new RolloutsTable();

    /** Columns over the response tokens: each has one entry per response token when present. */
    public static final List<String> PER_TOKEN = List.of(
            "logprobs", "ref_logprobs", "values", "advantages", "returns", "token_rewards");

    public static final StructType SCHEMA = keyColumns()
            .add(column("row_id", DataTypes.StringType, "the row's key: run_id/iteration/prompt_id/sample"))
            .add(column("prompt_id", DataTypes.StringType, "the prompt's id in its dataset"))
            .add(column("sample", DataTypes.IntegerType, "the response's index among its prompt's samples in the iteration, from 0"))
            .add(column("group", DataTypes.StringType, "the prompt's group, if the dataset has groups"))
            .add(column("prompt_text", DataTypes.StringType, "the prompt as the model saw it (after the chat template)"))
            .add(column("response_text", DataTypes.StringType, "the decoded response"))
            .add(column("prompt_tokens", INTS, "the prompt's token ids"))
            .add(column("response_tokens", INTS, "the response's token ids"))
            .add(column("prompt_length", DataTypes.IntegerType, "number of prompt tokens"))
            .add(column("response_length", DataTypes.IntegerType, "number of response tokens"))
            .add(column("logprobs", FLOATS, "log-probability of each response token under the generating policy"))
            .add(column("ref_logprobs", FLOATS, "log-probability of each response token under the reference model"))
            .add(column("values", FLOATS, "the critic's value at each response token"))
            .add(column("advantages", FLOATS, "the advantage of each response token"))
            .add(column("returns", FLOATS, "the return at each response token"))
            .add(column("token_rewards", FLOATS, "per-token rewards as the algorithm shaped them (KL penalty, final score)"))
            .add(column("reward", DataTypes.DoubleType, "the sequence reward: reward function or reward model score"))
            .add(column("reward_detail", DataTypes.StringType, "what the reward function found, e.g. correct, wrong, format"))
            .add(column("kl", DataTypes.DoubleType, "the sequence's KL estimate against the reference model"))
            .add(column("finish_reason", DataTypes.StringType, "stop (end token) or length (max new tokens)"))
            .add(column("policy_version", DataTypes.LongType, "optimizer steps of the policy that generated the response"))
            .add(column("generated_at", DataTypes.TimestampType, "when the response was generated"))
            .add(column("written_at", DataTypes.TimestampType, "when the row was written"));

    private RolloutsTable() {
    }

    @Override
    public String name() {
        return "rollouts";
    }

    @Override
    public StructType schema() {
        return SCHEMA;
    }

    @Override
    public Map<String, Column> derivedColumns() {
        return Map.of("row_id", concat_ws("/", col("run_id"), col("iteration"), col("prompt_id"), col("sample")),
                "prompt_length", size(col("prompt_tokens")),
                "response_length", size(col("response_tokens")),
                "written_at", current_timestamp());
    }

    @Override
    public Row toInputRow(RolloutRow r) {
        return RowFactory.create(r.promptId(), r.sample(), r.group(), r.promptText(), r.responseText(),
                RowValues.boxed(r.promptTokens()), RowValues.boxed(r.responseTokens()),
                RowValues.boxed(r.logprobs()), RowValues.boxed(r.refLogprobs()), RowValues.boxed(r.values()),
                RowValues.boxed(r.advantages()), RowValues.boxed(r.returns()), RowValues.boxed(r.tokenRewards()),
                r.reward(), r.rewardDetail(), r.kl(), r.finishReason().value(), r.policyVersion(),
                RowValues.timestamp(r.generatedAt()));
    }

    @Override
    public RolloutRow fromRow(Row r) {
        return new RolloutRow(r.getAs("prompt_id"), r.<Integer>getAs("sample"), r.getAs("group"), r.getAs("prompt_text"), r.getAs("response_text"),
                RowValues.ints(r, "prompt_tokens"), RowValues.ints(r, "response_tokens"),
                RowValues.floats(r, "logprobs"), RowValues.floats(r, "ref_logprobs"), RowValues.floats(r, "values"),
                RowValues.floats(r, "advantages"), RowValues.floats(r, "returns"), RowValues.floats(r, "token_rewards"),
                r.<Double>getAs("reward"), r.getAs("reward_detail"), r.getAs("kl"),
                FinishReason.parse(r.getAs("finish_reason")), r.<Long>getAs("policy_version"),
                RowValues.instant(r, "generated_at"));
    }

    @Override
    public Column problems() {
        Column responseLength = size(col("response_tokens"));
        List<Column> checks = new ArrayList<>(List.of(
                blank("prompt_id"), missing("prompt_text"), missing("response_text"),
                missing("prompt_tokens"), missing("response_tokens"), missing("logprobs")));
        for (String c : PER_TOKEN) {
            checks.add(when(col(c).isNotNull().and(col("response_tokens").isNotNull())
                            .and(size(col(c)).notEqual(responseLength)),
                    concat(lit(c + ": "), size(col(c)).cast("string"), lit(" values for "),
                            responseLength.cast("string"), lit(" response tokens"))));
        }
        checks.add(when(col("sample").isNull().or(col("sample").lt(0)), lit("sample: missing or negative")));
        checks.add(when(col("reward").isNull().or(isnan(col("reward"))), lit("reward: missing or NaN")));
        checks.add(when(not(coalesce(col("finish_reason").isin("stop", "length"), lit(false))),
                concat(lit("finish_reason: expected stop or length, got "), coalesce(col("finish_reason"), lit("null")))));
        checks.add(when(col("policy_version").isNull().or(col("policy_version").lt(0)),
                lit("policy_version: missing or negative")));
        checks.add(missing("generated_at"));
        return array_compact(array(checks.toArray(new Column[0])));
    }

    @Override
    public Column rowLabel() {
        return concat(lit("prompt_id="), coalesce(col("prompt_id"), lit("null")), lit(" sample="),
                coalesce(col("sample").cast("string"), lit("null")));
    }
}
