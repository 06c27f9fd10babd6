package org.sparkrlhf.datasets.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.sparkrlhf.datasets.ChatMessage;
import org.sparkrlhf.datasets.PromptRow;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** Prompts become the token ids HF would give: template as jinja2 renders it, ids as HF tokenizers gives them. */
class PromptTokenizerTest {
    static final Path TOKENIZER = Path.of("src/test/resources/tokenizer");
    static final ObjectMapper JSON = new ObjectMapper();
    static ChatTemplate template;
    static PromptTokenizer chat;

    @BeforeAll
    static void open() {
        template = ChatTemplate.fromTokenizerConfig(TOKENIZER);
        chat = PromptTokenizer.open(TOKENIZER, template, 256, Truncation.LEFT);
    }

    @Test
    void idsAreHuggingFacesOnItsOwnTestCase() throws Exception {
        JsonNode c = JSON.readTree(TOKENIZER.resolve("hf_tokenizer_case.json").toFile());
        int[] expected = JSON.convertValue(c.get("ids"), int[].class);
        PromptTokenizer raw = PromptTokenizer.open(TOKENIZER, null, 256, Truncation.LEFT);
        PromptRow p = PromptRow.text("x", c.get("text").asText(), null, null);
        assertArrayEquals(expected, raw.tokenize(p).tokens());
        assertEquals(c.get("decoded").asText(), raw.decode(expected));
    }

    @Test
    void aTextPromptIsOneUserMessageUnderTheTemplate() throws Exception {
        // The golden rendering of tiny-chatml for [user: "What is 37 + 58?"] with the generation prompt.
        String golden = null;
        for (JsonNode c : JSON.readTree(Path.of("src/test/resources/chat-templates/golden.json").toFile())) {
            if (c.get("template").asText().equals("tiny-chatml") && c.get("messages").size() == 1
                    && c.get("messages").get(0).get("content").asText().equals("What is 37 + 58?")
                    && c.get("add_generation_prompt").asBoolean()) {
                golden = c.get("expected").asText();
            }
        }
        assertNotNull(golden);
        TokenizedPrompt t = chat.tokenize(PromptRow.text("a1", "What is 37 + 58?", "95", null));
        assertEquals(golden, t.text());
        assertEquals(golden, chat.promptText(PromptRow.chat("a1", List.of(ChatMessage.user("What is 37 + 58?")), null, null)));

        // HF splits added tokens out of the text first and tokenizes the pieces between them alone.
        assertArrayEquals(piecewise(golden), t.tokens());
        assertEquals(1, t.tokens()[0]);
        assertEquals(golden.replace("<|bos|>", "").replace("<|eos|>", ""), chat.decode(t.tokens()));
        assertEquals(t.tokens().length, t.fullLength());
        assertFalse(t.truncated());
    }

    @Test
    void longPromptsAreTruncatedAsAsked() {
        PromptRow p = PromptRow.text("long", "Count: one two three four five six seven eight nine ten.", null, null);
        int[] full = chat.tokenize(p).tokens();
        assertTrue(full.length > 20);
        TokenizedPrompt left = PromptTokenizer.open(TOKENIZER, template, 20, Truncation.LEFT).tokenize(p);
        assertArrayEquals(Arrays.copyOfRange(full, full.length - 20, full.length), left.tokens());
        assertTrue(left.truncated());
        assertEquals(full.length, left.fullLength());
        TokenizedPrompt right = PromptTokenizer.open(TOKENIZER, template, 20, Truncation.RIGHT).tokenize(p);
        assertArrayEquals(Arrays.copyOf(full, 20), right.tokens());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PromptTokenizer.open(TOKENIZER, template, 20, Truncation.FAIL).tokenize(p));
        assertEquals("prompt long: " + full.length + " tokens, more than the maximum prompt length 20", e.getMessage());

        PromptTokenizer t40 = PromptTokenizer.open(TOKENIZER, template, 40, Truncation.LEFT);
        List<TokenizedPrompt> all = t40.tokenizeAll(List.of(p, PromptRow.text("s", "Hi", null, null)));
        assertTrue(all.get(1).fullLength() < 40);
        assertEquals(new TokenizationReport(2, 1, 40, full.length), t40.report(all));
    }

    @Test
    void withoutATemplateTextIsTokenizedAsItIsAndChatsAreRefused() {
        PromptTokenizer raw = PromptTokenizer.open(TOKENIZER.resolve("tokenizer.json"), null, 64, Truncation.LEFT);
        assertArrayEquals(raw.encode("<|bos|>What is 2 + 2?"),
                raw.tokenize(PromptRow.text("r", "<|bos|>What is 2 + 2?", null, null)).tokens());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> raw.tokenize(PromptRow.chat("c", List.of(ChatMessage.user("x")), null, null)));
        assertEquals("prompt c is a chat; tokenizing chats needs a chat template", e.getMessage());
    }

    @Test
    void completionsEndWithTheEosToken() {
        int[] c = chat.completion("95");
        int[] text = chat.encode("95");
        assertArrayEquals(text, Arrays.copyOf(c, text.length));
        assertEquals(2, c[c.length - 1]);
        assertEquals(text.length + 1, c.length);
    }

    /** The ids of a text with special tokens: each special token's id, each piece between them encoded alone. */
    static int[] piecewise(String text) {
        List<Integer> ids = new ArrayList<>();
        Matcher m = Pattern.compile("<\\|(pad|bos|eos)\\|>").matcher(text);
        int at = 0;
        while (m.find()) {
            if (m.start() > at) for (int id : chat.encode(text.substring(at, m.start()))) ids.add(id);
            ids.add(switch (m.group(1)) { case "pad" -> 0; case "bos" -> 1; default -> 2; });
            at = m.end();
        }
        if (at < text.length()) for (int id : chat.encode(text.substring(at))) ids.add(id);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }
}
