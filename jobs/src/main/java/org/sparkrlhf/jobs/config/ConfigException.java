package org.sparkrlhf.jobs.config;

/**
 * A run config that cannot work. The message names the file, the line and the dotted key path
 * (for example {@code run.yaml:7: models.actor.path: ...}) so that a user can fix it at once.
 */
public final class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }

    public ConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
