package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NativeBlocksTest {
    @Test
    void aBlockGivenBackIsTakenAgainForTheSameLengthOnly() {
        // a length no other test uses, so that the pool's other blocks do not interfere
        long n = 1_234_567;
        FloatPointer a = NativeBlocks.take(n);
        assertEquals(n, a.capacity());
        long address = a.address();
        long before = NativeBlocks.pooledBytes();
        NativeBlocks.give(a);
        assertEquals(before + 4 * n, NativeBlocks.pooledBytes());
        FloatPointer other = NativeBlocks.take(n + 1);
        assertNotEquals(address, other.address(), "another length gets a block of its own");
        FloatPointer again = NativeBlocks.take(n);
        assertEquals(address, again.address(), "the block given back");
        assertEquals(0, again.position());
        assertEquals(before, NativeBlocks.pooledBytes());
        NativeBlocks.give(again);
        NativeBlocks.give(other);
    }

    @Test
    void aReleasedTensorsMirrorServesTheNextTensorOfItsSize() {
        CpuTensor t = new CpuTensor(org.sparkrlhf.gpuexec.backend.DType.F32, new int[]{3, 7_654});
        t.write()[5] = 2f;
        long address = t.nativeMirror().address();
        assertEquals(2f, t.nativeMirror().get(5));
        assertTrue(t.release());
        CpuTensor u = new CpuTensor(org.sparkrlhf.gpuexec.backend.DType.F32, new int[]{7_654, 3});
        // the reused block's old values never show: the mirror is filled from the array first
        assertEquals(0f, u.nativeMirror().get(5));
        assertEquals(address, u.nativeMirror().address());
        u.release();
    }
}
