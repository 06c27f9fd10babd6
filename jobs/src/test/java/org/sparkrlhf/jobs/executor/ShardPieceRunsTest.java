package org.sparkrlhf.jobs.executor;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The runs a piece's range is copied in (each one ranged copy on a device): a column cut is one run
 * per row it touches, cut where the range starts or ends mid-row; a rectangle of whole rows of a
 * shard (a row cut, a 1-D tensor) is one run there, however many rows it spans. Runs as
 * {shard element, offset in the range, length}, by hand.
 */
class ShardPieceRunsTest {
    private static List<List<Integer>> runs(ShardPiece p, int first, int n, boolean source) {
        List<List<Integer>> out = new ArrayList<>();
        p.runs(first, n, source, (shardAt, offset, k) -> out.add(List.of(shardAt, offset, k)));
        return out;
    }

    @Test
    void columnCutsRunPerRowWholeRowsRunOnce() {
        // columns 4..6 of rows 2..4 of a 7-wide source, into rows 2..4 of a 3-wide shard
        ShardPiece p = new ShardPiece("w", 0, 1, 3, 3, 2, 4, 7, 2, 0, 3);
        assertEquals(List.of(List.of(2 * 7 + 4 + 1, 0, 2), List.of(3 * 7 + 4, 2, 3), List.of(4 * 7 + 4, 5, 1)),
                runs(p, 1, 6, true), "source: a run per row, the first and last cut mid-row");
        assertEquals(List.of(List.of(2 * 3 + 1, 0, 6)), runs(p, 1, 6, false), "destination: whole rows, one run");
        ShardPiece bias = new ShardPiece("b", 0, 1, 50, 1, 10, 0, 1, 0, 0, 1);
        assertEquals(List.of(List.of(10 + 7, 0, 40)), runs(bias, 7, 40, true), "a 1-D slice is one run");
        assertEquals(List.of(), runs(bias, 3, 0, false), "an empty range has no run");
    }
}
