package org.sparkrlhf.jobs.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.ChatMessage;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Text prompts get bos; chat prompts are the model's chat template's rendering with the generation prompt. */
class PromptTokensTest {
    @TempDir
    Path dir;

    @Test
    void textGetsBosAndMessagesGoThroughTheChatTemplate() throws Exception {
        Files.copy(SftTrainingTest.TINY_LLAMA.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        List<ChatMessage> chat = List.of(new ChatMessage("system", "Add."), ChatMessage.user("2+3="));
        try (HfTokenizer tokenizer = HfTokenizer.open(dir)) {
            PromptTokens tokens = new PromptTokens(tokenizer, dir, 1);
            int[] text = tokenizer.encodeInts("2+3=");
            int[] withBos = new int[text.length + 1];
            withBos[0] = 1;
            System.arraycopy(text, 0, withBos, 1, text.length);
            assertArrayEquals(withBos, tokens.of("2+3=", null, "row q1"));

            UnsupportedOperationException none = assertThrows(UnsupportedOperationException.class,
                    () -> tokens.of(null, chat, "prompts.jsonl: prompt q1"));
            assertTrue(none.getMessage().startsWith("prompts.jsonl: prompt q1: chat messages need the model's chat template"),
                    none.getMessage());

            Files.writeString(dir.resolve("tokenizer_config.json"), """
                    {"chat_template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}\\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"}
                    """);
            PromptTokens templated = new PromptTokens(tokenizer, dir, 1);
            // the template's text, as the template engine renders it (its own tests check the engine)
            String rendered = org.sparkrlhf.datasets.text.ChatTemplate.fromTokenizerConfig(dir).render(chat, true);
            assertTrue(rendered.startsWith("[system] Add.\n[user] 2+3=\n[assistant]"), rendered);
            assertArrayEquals(tokenizer.encodeInts(rendered), templated.of(null, chat, "prompts.jsonl: prompt q1"));
        }
    }
}
