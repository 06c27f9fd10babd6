package org.sparkrlhf.datasets.tasks;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sparkrlhf.datasets.JsonlFiles;
import org.sparkrlhf.datasets.PreferenceRow;
import org.sparkrlhf.datasets.PromptRow;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** The task generators: seeded, exact, disjoint held-out sets, and the shipped files are their output. */
class TaskGeneratorsTest {
    static final Pattern QUESTION = Pattern.compile("What is (\\d+) ([-+*]) (\\d+)\\?");

    @Test
    void arithmeticIsSeededAndExact() {
        List<PromptRow> a = ArithmeticTask.generate(0, 500, List.of(1, 2, 3), Set.of());
        assertEquals(a, ArithmeticTask.generate(0, 500, List.of(1, 2, 3), Set.of()));
        assertNotEquals(a, ArithmeticTask.generate(1, 500, List.of(1, 2, 3), Set.of()));
        Set<String> questions = new HashSet<>();
        for (PromptRow p : a) {
            Matcher m = QUESTION.matcher(p.prompt());
            assertTrue(m.matches(), p.prompt());
            BigInteger x = new BigInteger(m.group(1)), y = new BigInteger(m.group(3));
            BigInteger expected = switch (m.group(2)) {
                case "+" -> x.add(y);
                case "-" -> x.subtract(y);
                default -> x.multiply(y);
            };
            assertEquals(expected.toString(), p.reference(), p.prompt());
            assertEquals(Map.of("+", "add", "-", "sub", "*", "mul").get(m.group(2)), p.group());
            assertTrue(questions.add(p.prompt()), "no question twice: " + p.prompt());
            assertTrue(p.id().startsWith("arith-"));
        }
        for (long seed = 0; seed < 300; seed++) {
            ArithmeticTask.Problem one = ArithmeticTask.problem(seed, List.of(1));
            assertTrue(one.a() < 10 && one.b() < 10 && one.answer() >= 0 && one.op() != '*', one.question());
            ArithmeticTask.Problem two = ArithmeticTask.problem(seed, List.of(2));
            assertTrue(two.a() >= 10 && two.a() < 100 && two.answer() >= 0, two.question());
            if (two.op() == '*') assertTrue(two.b() >= 2 && two.b() <= 9, two.question());
        }
    }

    @Test
    void heldOutSetsShareNoQuestionWithTraining() {
        List<PromptRow> train = TaskGenerator.generate("arithmetic", 0, 2000, List.of(1, 2), Set.of());
        Set<String> trainQuestions = new HashSet<>();
        for (PromptRow p : train) trainQuestions.add(p.prompt());
        List<PromptRow> heldOut = TaskGenerator.generate("arithmetic", 1_000_000, 200, List.of(1, 2), trainQuestions);
        assertEquals(200, heldOut.size());
        for (PromptRow p : heldOut) assertFalse(trainQuestions.contains(p.prompt()), p.prompt());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ArithmeticTask.generate(0, 500, List.of(1), Set.of()));
        assertTrue(e.getMessage().startsWith("only 155 of 500 questions"), e.getMessage());
    }

    @Test
    void digitSortIsSeededSortedAndChecked() {
        List<PromptRow> a = DigitSortTask.generate(5, 300, List.of(1, 2, 3), Set.of());
        assertEquals(a, DigitSortTask.generate(5, 300, List.of(1, 2, 3), Set.of()));
        for (PromptRow p : a) {
            String digits = p.prompt().replaceAll("Sort the digits ([0-9 ]+) in ascending order\\.", "$1");
            char[] sorted = digits.replace(" ", "").toCharArray();
            Arrays.sort(sorted);
            assertEquals(String.join(" ", new String(sorted).split("")), p.reference());
            assertEquals("digits-" + sorted.length, p.group());
        }
        PromptRow p = PromptRow.text("s", "Sort the digits 4 1 9 3 in ascending order.", "1 3 4 9", "digits-4");
        RewardFunction f = RewardFunctions.forTask("digit-sort");
        for (String right : List.of("1 3 4 9", "1349", "1, 3, 4, 9", " 1 3 4 9.", "The sorted digits are 1 3 4 9.",
                "4 1 9 3 sorted:\n1 3 4 9", "#### 1 3 4 9", "\\boxed{1349}", "The answer is 1 3 4 9, from 4 1 9 3")) {
            assertEquals(new Reward(1.0, "correct"), f.score(p, right), right);
        }
        for (String wrong : List.of("1 3 9 4", "4 1 9 3", "1 3 4", "13 49 1", "1 3 4 9 9")) {
            assertEquals(new Reward(0.0, "wrong"), f.score(p, wrong), wrong);
        }
        assertEquals(new Reward(0.0, "format"), f.score(p, "I cannot sort"));
        assertEquals(new Reward(0.0, "format"), f.score(p, ""));
    }

    @Test
    void groupPreferencesDifferByGroupOnTheSameQuestions() {
        List<PreferenceRow> pairs = GroupPreferences.generate(7);
        assertEquals(pairs, GroupPreferences.generate(7));
        Map<String, Integer> perGroup = new HashMap<>();
        Map<String, Map<String, PreferenceRow>> byPromptAndGroup = new HashMap<>();
        int styleConflicts = 0;
        for (PreferenceRow r : pairs) {
            perGroup.merge(r.group(), 1, Integer::sum);
            // the prompt names the group's wish, then asks the question
            String instruction = GroupPreferences.instruction(r.group()) + " ";
            assertTrue(r.prompt().startsWith(instruction), r.toString());
            String question = r.prompt().substring(instruction.length());
            byPromptAndGroup.computeIfAbsent(question, k -> new HashMap<>()).put(r.group(), r);
            Matcher m = QUESTION.matcher(question);
            assertTrue(m.matches());
            BigInteger x = new BigInteger(m.group(1)), y = new BigInteger(m.group(3));
            String answer = (m.group(2).equals("+") ? x.add(y) : m.group(2).equals("-") ? x.subtract(y) : x.multiply(y)).toString();
            // Every group's chosen answer is right, read by the task's own checker.
            assertTrue(ArithmeticAnswer.isCorrect(r.chosen(), answer), r.toString());
            assertTrue(style(r.chosen()).equals(r.group()), r.toString());
            if (ArithmeticAnswer.isCorrect(r.rejected(), answer)) {
                assertNotEquals(r.group(), style(r.rejected()), "a right rejected answer is in another style");
            } else {
                assertEquals(r.group(), style(r.rejected()), "a wrong rejected answer is in the group's style");
            }
        }
        assertEquals(Map.of("concise", 150, "explained", 90, "boxed", 60), perGroup);
        // The same question, opposite preferences: what one group chooses another rejects.
        for (Map<String, PreferenceRow> groups : byPromptAndGroup.values()) {
            for (PreferenceRow x : groups.values()) {
                for (PreferenceRow y : groups.values()) {
                    if (x != y && x.chosen().equals(y.rejected())) styleConflicts++;
                }
            }
        }
        assertTrue(styleConflicts >= 60, "conflicting pairs: " + styleConflicts);
        assertEquals(150, byPromptAndGroup.size());
    }

    static String style(String answer) {
        if (answer.startsWith("\\boxed{")) return "boxed";
        if (answer.contains("The answer is")) return "explained";
        return "concise";
    }

    /** The shipped datasets are exactly what the commands in datasets/README.md write. */
    @Test
    void shippedDatasetsAreTheGeneratorsOutput(@TempDir Path dir) throws IOException {
        Map<String, List<?>> expected = new HashMap<>();
        List<PromptRow> arithmeticTrain = TaskGenerator.generate("arithmetic", 0, 2000, List.of(1, 2), Set.of());
        expected.put("arithmetic/train.jsonl", arithmeticTrain);
        expected.put("arithmetic/heldout.jsonl", TaskGenerator.generate("arithmetic", 1_000_000, 200, List.of(1, 2),
                prompts(arithmeticTrain)));
        List<PromptRow> sortTrain = TaskGenerator.generate("digit-sort", 0, 1000, List.of(1, 2), Set.of());
        expected.put("digit-sort/train.jsonl", sortTrain);
        expected.put("digit-sort/heldout.jsonl", TaskGenerator.generate("digit-sort", 1_000_000, 200, List.of(1, 2),
                prompts(sortTrain)));
        expected.put("group-preferences/pairs.jsonl", GroupPreferences.generate(7));
        assertEquals(Set.copyOf(ShippedDatasets.NAMES), expected.keySet());
        for (String name : ShippedDatasets.NAMES) {
            Path file = dir.resolve(name.replace('/', '-'));
            JsonlFiles.write(file, expected.get(name));
            try (InputStream in = ShippedDatasets.open(name)) {
                assertArrayEquals(Files.readAllBytes(file), readAll(in), name);
            }
        }
        // The generator's command line writes the same bytes.
        Path viaMain = dir.resolve("main.jsonl");
        TaskGenerator.main(new String[]{"--task", "digit-sort", "--seed", "1000000", "--count", "200", "--levels", "1,2",
                "--exclude", ShippedDatasets.copyTo("digit-sort/train.jsonl", dir).toString(), "--out", viaMain.toString()});
        try (InputStream in = ShippedDatasets.open("digit-sort/heldout.jsonl")) {
            assertArrayEquals(readAll(in), Files.readAllBytes(viaMain));
        }
    }

    private static Set<String> prompts(List<PromptRow> rows) {
        Set<String> out = new HashSet<>();
        for (PromptRow p : rows) out.add(p.prompt());
        return out;
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        in.transferTo(b);
        return b.toByteArray();
    }
}
