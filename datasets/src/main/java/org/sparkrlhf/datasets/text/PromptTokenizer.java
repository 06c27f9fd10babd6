package org.sparkrlhf.datasets.text;

import org.sparkrlhf.datasets.ChatMessage;
import org.sparkrlhf.datasets.PromptRow;
import org.sparkrlhf.gpuexec.tokenizer.HfTokenizer;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Turns prompts into the token ids a model is given: the chat template (if any) renders the
 * prompt with the generation prompt appended, as {@code apply_chat_template(...,
 * add_generation_prompt=True)}; the text is tokenized with the model's tokenizer.json (HF
 * tokenizers through DJL, no special tokens added: the template writes them); a prompt longer
 * than the maximum is truncated as {@link Truncation} says.
 *
 * <p>A text prompt under a chat template is one user message. Without a template, a text prompt
 * is tokenized as it is, and a chat prompt is an error.
 *
 * <p>Serializable, to tokenize on executors: it carries tokenizer.json's bytes, and each JVM opens
 * one native tokenizer per distinct tokenizer.json.
 */
public final class PromptTokenizer implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final Map<String, HfTokenizer> OPEN = new ConcurrentHashMap<>();

    private final byte[] tokenizerJson;
    private final String source;
    private final String digest;
    private final ChatTemplate template;
    private final int maxPromptTokens;
    private final Truncation truncation;

    private PromptTokenizer(byte[] tokenizerJson, String source, ChatTemplate template, int maxPromptTokens,
                            Truncation truncation) {
        if (maxPromptTokens < 1) throw new IllegalArgumentException("maximum prompt length " + maxPromptTokens + " is not positive");
        this.tokenizerJson = tokenizerJson.clone();
        this.source = source;
        this.digest = sha256(tokenizerJson);
        this.template = template;
        this.maxPromptTokens = maxPromptTokens;
        this.truncation = truncation;
    }

    /** The tokenizer.json of a file or model directory; {@code template} may be null (raw text prompts). */
    public static PromptTokenizer open(Path tokenizerJsonOrModelDir, ChatTemplate template, int maxPromptTokens,
                                       Truncation truncation) {
        Path file = Files.isDirectory(tokenizerJsonOrModelDir)
                ? tokenizerJsonOrModelDir.resolve("tokenizer.json") : tokenizerJsonOrModelDir;
        try {
            return fromBytes(Files.readAllBytes(file), file.toString(), template, maxPromptTokens, truncation);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read tokenizer.json", e);
        }
    }

    /** From tokenizer.json's bytes, read from wherever (a Hadoop FileSystem, a jar). */
    public static PromptTokenizer fromBytes(byte[] tokenizerJson, String source, ChatTemplate template,
                                           int maxPromptTokens, Truncation truncation) {
        PromptTokenizer t = new PromptTokenizer(tokenizerJson, source, template, maxPromptTokens, truncation);
        t.tokenizer(); // fail here, not on an executor, if the file is not a tokenizer
        return t;
    }

    public int maxPromptTokens() {
        return maxPromptTokens;
    }

    public Truncation truncation() {
        return truncation;
    }

    public ChatTemplate template() {
        return template;
    }

    /** The prompt's text as the model sees it. */
    public String promptText(PromptRow p) {
        if (template == null) {
            if (p.messages() != null) {
                throw new IllegalArgumentException("prompt " + p.id() + " is a chat; tokenizing chats needs a chat template");
            }
            return p.prompt();
        }
        List<ChatMessage> messages = p.messages() != null ? p.messages() : List.of(ChatMessage.user(p.prompt()));
        try {
            return template.render(messages, true);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("prompt " + p.id() + ": " + e.getMessage(), e);
        }
    }

    /**
     * The prompt's tokens, truncated to the maximum. With {@link Truncation#FAIL} an over-long
     * prompt is an error.
     */
    public TokenizedPrompt tokenize(PromptRow p) {
        TokenizedPrompt t = tokenizeWithoutFailing(p);
        if (t.truncated() && truncation == Truncation.FAIL) {
            throw new IllegalArgumentException("prompt " + p.id() + ": " + t.fullLength()
                    + " tokens, more than the maximum prompt length " + maxPromptTokens);
        }
        return t;
    }

    /** As {@link #tokenize}, but FAIL truncates as LEFT does, so that a dataset's check can report all over-long prompts at once. */
    TokenizedPrompt tokenizeWithoutFailing(PromptRow p) {
        String text = promptText(p);
        int[] ids = encode(text);
        if (ids.length <= maxPromptTokens) return new TokenizedPrompt(text, ids, ids.length, false);
        int[] kept = truncation == Truncation.RIGHT
                ? Arrays.copyOf(ids, maxPromptTokens)
                : Arrays.copyOfRange(ids, ids.length - maxPromptTokens, ids.length);
        return new TokenizedPrompt(text, kept, ids.length, true);
    }

    public List<TokenizedPrompt> tokenizeAll(List<PromptRow> prompts) {
        List<TokenizedPrompt> out = new ArrayList<>(prompts.size());
        for (PromptRow p : prompts) out.add(tokenize(p));
        return out;
    }

    public TokenizationReport report(List<TokenizedPrompt> prompts) {
        long truncated = 0;
        int longest = 0;
        for (TokenizedPrompt t : prompts) {
            if (t.truncated()) truncated++;
            longest = Math.max(longest, t.fullLength());
        }
        return new TokenizationReport(prompts.size(), truncated, maxPromptTokens, longest);
    }

    /**
     * An answer's tokens as they follow a prompt in SFT or preference training: the text's tokens,
     * then the end-of-sequence token when the chat template names one.
     */
    public int[] completion(String answer) {
        int[] ids = encode(answer);
        String eos = template == null ? null : template.specialTokens().get("eos_token");
        if (eos == null) return ids;
        int[] eosIds = encode(eos);
        if (eosIds.length != 1) throw new IllegalArgumentException(source + ": eos_token " + eos + " is not one token");
        int[] out = Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = eosIds[0];
        return out;
    }

    public int[] encode(String text) {
        return tokenizer().encodeInts(text);
    }

    /** Text without special tokens, as HF's decode(skip_special_tokens=True). */
    public String decode(int[] ids) {
        return tokenizer().decode(ids);
    }

    private HfTokenizer tokenizer() {
        return OPEN.computeIfAbsent(digest, d -> {
            try {
                // DJL opens tokenizers from files: a copy per JVM, named by content.
                Path file = Files.createTempDirectory("sparkrlhf-tokenizer-").resolve("tokenizer.json");
                Files.write(file, tokenizerJson);
                file.toFile().deleteOnExit();
                file.getParent().toFile().deleteOnExit();
                return HfTokenizer.open(file);
            } catch (IOException e) {
                throw new UncheckedIOException(source + ": cannot copy tokenizer.json", e);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
            }
        });
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
