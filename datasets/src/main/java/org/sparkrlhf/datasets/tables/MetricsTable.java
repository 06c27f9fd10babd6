package org.sparkrlhf.datasets.tables;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.util.List;

import static org.apache.spark.sql.functions.*;
import static org.sparkrlhf.datasets.tables.Schemas.*;

/** The {@code metrics} table: one row per named figure per iteration. */
public final class MetricsTable implements TableLayout<MetricRow> {
    public static final MetricsTable LAYOUT = new MetricsTable();

    public static final StructType SCHEMA = keyColumns()
            .add(column("name", DataTypes.StringType, "the metric, e.g. reward/mean, loss/actor, seconds/actor_gen"))
            .add(column("value", DataTypes.DoubleType, "its value (NaN is kept: a diverged loss is data)"))
            .add(column("time", DataTypes.TimestampType, "when it was measured"));

    private MetricsTable() {
    }

    @Override
    public String name() {
        return "metrics";
    }

    @Override
    public StructType schema() {
        return SCHEMA;
    }

    @Override
    public Row toInputRow(MetricRow r) {
        return RowFactory.create(r.name(), r.value(), RowValues.timestamp(r.time()));
    }

    @Override
    public MetricRow fromRow(Row r) {
        return new MetricRow(r.getAs("name"), r.<Double>getAs("value"), RowValues.instant(r, "time"));
    }

    @Override
    public Column problems() {
        return array_compact(array(blank("name"), missing("value"), missing("time")));
    }

    @Override
    public Column rowLabel() {
        return concat(lit("name="), coalesce(col("name"), lit("null")));
    }
}
