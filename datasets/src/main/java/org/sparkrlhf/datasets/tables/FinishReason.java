package org.sparkrlhf.datasets.tables;

import java.util.Locale;

/** Why generation of a response stopped; stored as its lower-case name. */
public enum FinishReason {
    /** The model emitted an end-of-sequence (or a stop) token. */
    STOP,
    /** The response reached the maximum number of new tokens. */
    LENGTH;

    public String value() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static FinishReason parse(String value) {
        return valueOf(value.toUpperCase(Locale.ROOT));
    }
}
