package org.sparkrlhf.gpuexec.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;

/** A native float buffer that grows to the largest size asked for and is kept between calls. */
final class NativeScratch {
    private FloatPointer p, view;

    /** At least n floats, as a view that owns nothing ({@link NativeBlocks#view}); the contents are undefined. */
    FloatPointer get(long n) {
        if (p == null || p.capacity() < n) {
            if (p != null) p.close();
            p = new FloatPointer(Math.max(1, n));
            view = NativeBlocks.view(p);
        }
        return view;
    }

    void free() {
        if (p != null) p.close();
        p = null;
        view = null;
    }
}
