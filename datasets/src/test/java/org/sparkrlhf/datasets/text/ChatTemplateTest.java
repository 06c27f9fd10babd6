package org.sparkrlhf.datasets.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.sparkrlhf.datasets.ChatMessage;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Chat templates render as Hugging Face's apply_chat_template renders them: golden strings made by
 * Python's jinja2 3.1.6 in HF's environment (src/test/resources/chat-templates/make_golden.py).
 */
class ChatTemplateTest {
    static final Path DIR = Path.of("src/test/resources/chat-templates");
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void everyGoldenCaseRendersExactlyAsJinja2() throws Exception {
        JsonNode cases = JSON.readTree(DIR.resolve("golden.json").toFile());
        Map<String, ChatTemplate> templates = new HashMap<>();
        int rendered = 0, raised = 0;
        for (JsonNode c : cases) {
            String name = c.get("template").asText();
            Map<String, String> special = JSON.convertValue(c.get("special_tokens"), Map.class);
            ChatTemplate t = templates.computeIfAbsent(name, n -> ChatTemplate.of(read(n + ".jinja"), special));
            List<ChatMessage> messages = new ArrayList<>();
            for (JsonNode m : c.get("messages")) messages.add(new ChatMessage(m.get("role").asText(), m.get("content").asText()));
            List<?> tools = c.get("tools").isNull() ? null : JSON.convertValue(c.get("tools"), List.class);
            boolean agp = c.get("add_generation_prompt").asBoolean();
            String what = name + " " + c.get("messages") + " agp=" + agp;
            if (c.has("error")) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.render(messages, agp, tools), what);
                assertTrue(e.getMessage().contains(c.get("error").asText()), e.getMessage());
                raised++;
            } else {
                assertEquals(c.get("expected").asText(), t.render(messages, agp, tools), what);
                rendered++;
            }
        }
        assertEquals(69, rendered);
        assertEquals(2, raised);
    }

    @Test
    void templateAndSpecialTokensComeFromTokenizerConfig() {
        ChatTemplate t = ChatTemplate.fromTokenizerConfig(Path.of("src/test/resources/tokenizer"));
        assertEquals(read("tiny-chatml.jinja"), t.template());
        assertEquals(Map.of("bos_token", "<|bos|>", "eos_token", "<|eos|>", "pad_token", "<|pad|>"), t.specialTokens());

        String named = "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, "
                + "{\"name\": \"default\", \"template\": \"{{ messages[0].content }}\"}]}";
        assertEquals("hi", ChatTemplate.fromTokenizerConfigJson(named, null, "cfg").render(List.of(ChatMessage.user("hi")), false));
        assertEquals("J", ChatTemplate.fromTokenizerConfigJson("{}", "J", "cfg").render(List.of(), false));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ChatTemplate.fromTokenizerConfigJson("{\"bos_token\": \"<s>\"}", null, "x/tokenizer_config.json"));
        assertTrue(e.getMessage().contains("x/tokenizer_config.json: no chat_template"), e.getMessage());
    }

    @Test
    void aBrokenTemplateIsAClearError() {
        ChatTemplate t = ChatTemplate.of("{% for m in messages %}{{ m.content }", Map.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.render(List.of(ChatMessage.user("x")), false));
        assertTrue(e.getMessage().startsWith("chat template: cannot render"), e.getMessage());
    }

    @Test
    void strftimeMatchesPython() {
        // python3 -c "import datetime; print(datetime.datetime(2026,3,7,15,4,9).strftime('%d %b %Y|%A %B %j %I%p %y-%m-%d %H:%M:%S %%'))"
        ZonedDateTime t = ZonedDateTime.of(2026, 3, 7, 15, 4, 9, 0, ZoneOffset.UTC);
        assertEquals("07 Mar 2026|Saturday March 066 03PM 26-03-07 15:04:09 %",
                TemplateFunctions.strftime("%d %b %Y|%A %B %j %I%p %y-%m-%d %H:%M:%S %%", t));
    }

    @Test
    void pythonJsonMatchesJsonDumps() {
        // python3 -c "import json; print(json.dumps({'b': [1, 2.5, 1e-05, 0.0001, 1e16, None, True], 'a': 'é\n\"\x01'}, ensure_ascii=False))"
        Map<String, Object> v = new java.util.LinkedHashMap<>();
        v.put("b", java.util.Arrays.asList(1L, 2.5, 1e-05, 0.0001, 1e16, null, true));
        v.put("a", "é\n\"\u0001");
        assertEquals("{\"b\": [1, 2.5, 1e-05, 0.0001, 1e+16, null, true], \"a\": \"é\\n\\\"\\u0001\"}",
                PythonJson.dumps(v, null, false));
        // python3 -c "import json; print(json.dumps({'b': [1], 'a': {}}, indent=2, sort_keys=True))"
        v = new java.util.LinkedHashMap<>();
        v.put("b", List.of(1L));
        v.put("a", Map.of());
        assertEquals("{\n  \"a\": {},\n  \"b\": [\n    1\n  ]\n}", PythonJson.dumps(v, 2, true));
    }

    static String read(String name) {
        try {
            return Files.readString(DIR.resolve(name), StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
