package org.sparkrlhf.jobs.train;

import org.sparkrlhf.datasets.ChatMessage;
import org.sparkrlhf.datasets.text.ChatTemplate;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A dataset row's prompt as the model reads it. A chat prompt ({@code messages}) is rendered by the
 * model's chat template (tokenizer_config.json's {@code chat_template}, or chat_template.jinja) with
 * the generation prompt appended, as transformers' {@code apply_chat_template(...,
 * add_generation_prompt=True)}, and tokenized as it is (the template writes the special tokens); a
 * text prompt is [bos] + its tokens. A chat prompt for a model without a template is an error.
 */
public final class PromptTokens {
    private final HfTokenizer tokenizer;
    private final Path tokenizerDir;
    private final int bos;
    private ChatTemplate template;

    public PromptTokens(HfTokenizer tokenizer, Path tokenizerDir, int bos) {
        this.tokenizer = tokenizer;
        this.tokenizerDir = tokenizerDir;
        this.bos = bos;
    }

    /** The tokens of a row's prompt: {@code text}, or else {@code messages}; {@code row} names it in errors. */
    public int[] of(String text, List<ChatMessage> messages, String row) {
        if (text != null) {
            int[] t = tokenizer.encodeInts(text);
            int[] ids = new int[1 + t.length];
            ids[0] = bos;
            System.arraycopy(t, 0, ids, 1, t.length);
            return ids;
        }
        return tokenizer.encodeInts(template(row).render(messages, true));
    }

    private ChatTemplate template(String row) {
        if (template == null) {
            Path config = tokenizerDir.resolve("tokenizer_config.json");
            if (!Files.isRegularFile(config) && !Files.isRegularFile(tokenizerDir.resolve("chat_template.jinja"))) {
                throw new UnsupportedOperationException(row + ": chat messages need the model's chat template, and "
                        + tokenizerDir + " has no tokenizer_config.json (or chat_template.jinja); give a prompt text");
            }
            template = ChatTemplate.fromTokenizerConfig(Files.isRegularFile(config) ? config : tokenizerDir);
        }
        return template;
    }
}
