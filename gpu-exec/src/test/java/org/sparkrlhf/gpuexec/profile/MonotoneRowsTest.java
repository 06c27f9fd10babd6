package org.sparkrlhf.gpuexec.profile;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class MonotoneRowsTest {
    @Test
    void violatorsArePooledIntoTheirMean() {
        assertArrayEquals(new double[]{1, 2.5, 2.5, 4}, MonotoneRows.nonDecreasing(new double[]{1, 3, 2, 4}), 1e-12);
        // a point far below both neighbours pools with the one before; then the pool with the next
        assertArrayEquals(new double[]{3, 3, 3}, MonotoneRows.nonDecreasing(new double[]{5, 1, 3}), 1e-12);
        assertArrayEquals(new double[]{1, 2, 3}, MonotoneRows.nonDecreasing(new double[]{1, 2, 3}), 1e-12);
    }

    @Test
    void eachOpAndContextIsItsOwnSeriesInTokenOrder() {
        List<ProfileRow> rows = List.of(
                new ProfileRow("m", "cpu", "layer_fwd", 1, 64, 16, 4.0),
                new ProfileRow("m", "cpu", "layer_fwd", 1, 16, 16, 6.0),
                new ProfileRow("m", "cpu", "layer_fwd", 1, 16, 32, 1.0),
                new ProfileRow("m", "cpu", "head_fwd", 1, 16, 0, 2.0),
                new ProfileRow("m", "cpu", "head_fwd", 1, 64, 0, 1e-9));
        List<ProfileRow> fit = MonotoneRows.fit(rows);
        // layer_fwd at context 16: 6 at 16 tokens and 4 at 64 pool to 5; context 32 alone; the head pools
        assertEquals(List.of(5.0, 5.0, 1.0, (2.0 + 1e-9) / 2, (2.0 + 1e-9) / 2),
                fit.stream().map(ProfileRow::seconds).toList());
        assertEquals(rows.get(0).tokens(), fit.get(0).tokens());
        assertEquals(rows.get(3).op(), fit.get(3).op());
    }
}
