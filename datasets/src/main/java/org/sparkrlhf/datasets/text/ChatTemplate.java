package org.sparkrlhf.datasets.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import jinjava.javax.el.CompositeELResolver;
import org.sparkrlhf.datasets.ChatMessage;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A Hugging Face chat template (the {@code chat_template} of tokenizer_config.json), rendered the
 * way {@code tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)}
 * renders it: Jinja with trim_blocks and lstrip_blocks, the template variables {@code messages},
 * {@code add_generation_prompt}, {@code tools} (None), {@code documents} (None) and the special
 * tokens ({@code bos_token}, {@code eos_token}, ...), HF's {@code tojson}, {@code raise_exception}
 * and {@code strftime_now}. Jinja is Jinjava here, with Python's str methods added; checked
 * against Python's jinja2 on golden templates.
 *
 * <p>Known differences from Python's Jinja: {@code not a == b} parses as {@code (not a) == b}
 * (write {@code not (a == b)}); a variable that is None counts as not defined; booleans and None
 * print as "true"/"" rather than "True"/"None". Not supported: the {@code {% generation %}}
 * block (assistant masks).
 */
public final class ChatTemplate implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The special-token keys HF passes to templates (its special_tokens_map). */
    public static final List<String> SPECIAL_TOKEN_KEYS = List.of(
            "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token");

    private final String template;
    private final String body;
    private final Map<String, String> specialTokens;
    private final String source;
    private transient Jinjava jinjava;

    private ChatTemplate(String template, Map<String, String> specialTokens, String source) {
        this.template = Objects.requireNonNull(template, "template");
        // Jinja drops one newline at the very end of a template (keep_trailing_newline=False).
        this.body = template.endsWith("\r\n") ? template.substring(0, template.length() - 2)
                : template.endsWith("\n") || template.endsWith("\r") ? template.substring(0, template.length() - 1) : template;
        this.specialTokens = Map.copyOf(specialTokens);
        this.source = source;
    }

    public static ChatTemplate of(String template, Map<String, String> specialTokens) {
        return new ChatTemplate(template, specialTokens, "chat template");
    }

    /**
     * The template of a tokenizer_config.json (or of the model directory holding it). The
     * template is its {@code chat_template}: a string, or a list of named templates of which
     * "default" is taken; when the config has none, a {@code chat_template.jinja} beside it.
     */
    public static ChatTemplate fromTokenizerConfig(Path fileOrModelDir) {
        Path file = Files.isDirectory(fileOrModelDir) ? fileOrModelDir.resolve("tokenizer_config.json") : fileOrModelDir;
        try {
            String json = Files.readString(file, StandardCharsets.UTF_8);
            Path jinjaFile = file.resolveSibling("chat_template.jinja");
            String separate = Files.isRegularFile(jinjaFile) ? Files.readString(jinjaFile, StandardCharsets.UTF_8) : null;
            return fromTokenizerConfigJson(json, separate, file.toString());
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read", e);
        }
    }

    /**
     * The template of a tokenizer_config.json's text; {@code separateTemplate} is the content of
     * a chat_template.jinja beside it, or null.
     */
    public static ChatTemplate fromTokenizerConfigJson(String json, String separateTemplate, String source) {
        JsonNode config;
        try {
            config = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException(source + ": not valid JSON: " + e.getMessage(), e);
        }
        String template = null;
        JsonNode t = config.get("chat_template");
        if (t != null && t.isTextual()) {
            template = t.asText();
        } else if (t != null && t.isArray()) {
            for (JsonNode named : t) {
                if ("default".equals(named.path("name").asText())) template = named.path("template").asText();
            }
            if (template == null) throw new IllegalArgumentException(source + ": chat_template has no template named 'default'");
        } else if (t != null && !t.isNull()) {
            throw new IllegalArgumentException(source + ": field 'chat_template' should be a string or a list of named templates");
        } else if (separateTemplate != null) {
            template = separateTemplate;
        }
        if (template == null) {
            throw new IllegalArgumentException(source + ": no chat_template (and no chat_template.jinja beside it)");
        }
        Map<String, String> special = new LinkedHashMap<>();
        for (String key : SPECIAL_TOKEN_KEYS) {
            JsonNode v = config.get(key);
            if (v == null || v.isNull()) continue;
            // A token is a string, or an AddedToken object whose text is its "content".
            String text = v.isTextual() ? v.asText() : v.path("content").isTextual() ? v.path("content").asText() : null;
            if (text == null) throw new IllegalArgumentException(source + ": field '" + key + "' is neither a string nor a token object");
            special.put(key, text);
        }
        return new ChatTemplate(template, special, source);
    }

    public String template() {
        return template;
    }

    public Map<String, String> specialTokens() {
        return specialTokens;
    }

    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, null);
    }

    /**
     * Renders a conversation. {@code tools} are JSON-like values (maps, lists, strings, numbers)
     * for templates that describe tools, or null.
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, List<?> tools) {
        List<Map<String, Object>> msgs = new ArrayList<>();
        for (ChatMessage m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            msgs.add(map);
        }
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.put("messages", msgs);
        context.put("add_generation_prompt", addGenerationPrompt);
        context.put("tools", tools);
        context.put("documents", null);
        RenderResult result;
        try {
            result = jinjava().renderForResult(body, context);
        } catch (TemplateFunctions.TemplateRaised e) {
            throw new IllegalArgumentException(source + " rejects the conversation: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(source + ": cannot render: " + e.getMessage(), e);
        }
        for (TemplateError error : result.getErrors()) {
            if (error.getSeverity() != TemplateError.ErrorType.FATAL) continue;
            Throwable cause = error.getException();
            while (cause != null && !(cause instanceof TemplateFunctions.TemplateRaised)) cause = cause.getCause();
            if (cause != null) throw new IllegalArgumentException(source + " rejects the conversation: " + cause.getMessage());
            if (error.getMessage() != null && error.getMessage().contains(TemplateFunctions.TemplateRaised.class.getSimpleName())) {
                throw new IllegalArgumentException(source + " rejects the conversation: " + error.getMessage());
            }
            throw new IllegalArgumentException(source + ": cannot render (line " + error.getLineno() + "): " + error.getMessage());
        }
        return result.getOutput();
    }

    /**
     * Jinjava's switches towards Python Jinja. Needed by the golden templates: '-' whitespace
     * control on {{- and {#- and strict parsing of it, iterating a dict over its keys. The others
     * are Python's semantics too: operator precedence, dict literal keys as expressions, lists and
     * dicts printed Python-style, None items kept in loops.
     */
    private static final LegacyOverrides PYTHON_JINJA = LegacyOverrides.newBuilder()
            .withUseTrimmingForNotesAndExpressions(true)
            .withParseWhitespaceControlStrictly(true)
            .withIterateOverMapKeys(true)
            .withUseNaturalOperatorPrecedence(true)
            .withEvaluateMapKeys(true)
            .withUsePyishObjectMapper(true)
            .withKeepNullableLoopValues(true)
            .build();

    private Jinjava jinjava() {
        if (jinjava == null) {
            CompositeELResolver resolver = new CompositeELResolver();
            resolver.add(new PythonStringMethods());
            resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
            JinjavaConfig config = JinjavaConfig.newBuilder()
                    .withTrimBlocks(true)
                    .withLstripBlocks(true)
                    .withElResolver(resolver)
                    .withLegacyOverrides(PYTHON_JINJA)
                    .build();
            Jinjava j = new Jinjava(config);
            j.getGlobalContext().registerFilter(new TemplateFunctions.ToJson());
            j.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception",
                    TemplateFunctions.class, "raiseException", String.class));
            j.getGlobalContext().registerFunction(new ELFunctionDefinition("", "strftime_now",
                    TemplateFunctions.class, "strftimeNow", String.class));
            jinjava = j;
        }
        return jinjava;
    }
}
