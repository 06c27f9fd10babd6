package org.sparkrlhf.datasets.tables;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.sparkrlhf.datasets.JsonText;

import java.util.ArrayList;
import java.util.List;

import static org.apache.spark.sql.functions.*;
import static org.sparkrlhf.datasets.tables.Schemas.*;

/** The {@code plans} table: per iteration, the execution plan and its estimated and measured seconds per call. */
public final class PlansTable implements TableLayout<PlanRow> {
    public static final PlansTable LAYOUT = new PlansTable();

    public static final StructType CALL = new StructType()
            .add(column("call", DataTypes.StringType, "the model function call, e.g. actor_gen"))
            .add(column("estimated_seconds", DataTypes.DoubleType, "the planner's estimate"))
            .add(column("measured_seconds", DataTypes.DoubleType, "measured wall-clock seconds; null if not run"))
            .add(column("estimated_start", DataTypes.DoubleType, "the simulator's start of the call, seconds from the iteration's start"))
            .add(column("estimated_end", DataTypes.DoubleType, "the simulator's end of the call, seconds from the iteration's start"));

    public static final StructType SCHEMA = keyColumns()
            .add(column("plan_json", DataTypes.StringType, "the plan as the planner writes it (JSON)"))
            .add(column("calls", DataTypes.createArrayType(CALL), "per call: estimated and measured seconds, and the estimated schedule"))
            .add(column("estimated_seconds", DataTypes.DoubleType, "the simulator's estimate for the iteration"))
            .add(column("measured_seconds", DataTypes.DoubleType, "the iteration's measured seconds"))
            .add(column("time", DataTypes.TimestampType, "when the plan was recorded"));

    private PlansTable() {
    }

    @Override
    public String name() {
        return "plans";
    }

    @Override
    public StructType schema() {
        return SCHEMA;
    }

    @Override
    public Row toInputRow(PlanRow r) {
        List<Row> calls = new ArrayList<>();
        for (PlanRow.CallTiming c : r.calls()) {
            calls.add(RowFactory.create(c.call(), c.estimatedSeconds(), c.measuredSeconds(), c.estimatedStart(),
                    c.estimatedEnd()));
        }
        return RowFactory.create(r.planJson(), calls, r.estimatedSeconds(), r.measuredSeconds(),
                RowValues.timestamp(r.time()));
    }

    @Override
    public PlanRow fromRow(Row r) {
        List<PlanRow.CallTiming> calls = new ArrayList<>();
        for (Row c : r.<Row>getList(r.fieldIndex("calls"))) {
            calls.add(new PlanRow.CallTiming(c.getAs("call"), c.<Double>getAs("estimated_seconds"),
                    c.getAs("measured_seconds"), c.getAs("estimated_start"), c.getAs("estimated_end")));
        }
        return new PlanRow(r.getAs("plan_json"), calls, r.<Double>getAs("estimated_seconds"),
                r.getAs("measured_seconds"), RowValues.instant(r, "time"));
    }

    @Override
    public Column problems() {
        Column badCalls = filter(col("calls"), c -> c.isNull().or(c.getField("call").isNull())
                .or(trim(c.getField("call")).equalTo("")).or(c.getField("estimated_seconds").isNull())
                .or(c.getField("estimated_seconds").lt(0)));
        return array_compact(array(
                blank("plan_json"),
                when(col("plan_json").isNotNull().and(not(JsonText.isOneValue(col("plan_json")))),
                        lit("plan_json: not valid JSON")),
                missing("calls"),
                when(size(badCalls).gt(0), lit("calls: a call without a name or a non-negative estimate")),
                when(col("estimated_seconds").isNull().or(col("estimated_seconds").lt(0)),
                        lit("estimated_seconds: missing or negative")),
                missing("time")));
    }

    @Override
    public Column rowLabel() {
        return lit("plan");
    }
}
