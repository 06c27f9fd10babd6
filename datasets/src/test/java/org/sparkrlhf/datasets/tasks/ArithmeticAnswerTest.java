package org.sparkrlhf.datasets.tasks;

import org.junit.jupiter.api.Test;
import org.sparkrlhf.datasets.PromptRow;

import java.math.BigDecimal;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.*;

/** The arithmetic checker accepts right answers in many formats and rejects wrong or ambiguous ones. */
class ArithmeticAnswerTest {

    @Test
    void rightAnswersInSeveralFormatsAreAccepted() {
        for (String r : List.of("95", " 95 ", "95\n", "The answer is 95.", "the answer is: 95", "Answer: 95",
                "#### 95", "Let me add.\n37 + 58 = 95\n#### 95", "\\boxed{95}", "So it is $\\boxed{95}$.",
                "95.0", "95.00", "37 + 58 = 95", "37+58=95.", "I think it is 95", "$95$", "95!",
                "First 37 + 50 = 87, then 87 + 8 = 95. The answer is 95.")) {
            assertTrue(ArithmeticAnswer.isCorrect(r, "95"), r);
        }
        assertTrue(ArithmeticAnswer.isCorrect("1,234", "1234"));
        assertTrue(ArithmeticAnswer.isCorrect("The answer is 1,234.", "1234"));
        assertTrue(ArithmeticAnswer.isCorrect("#### 1,234,567", "1234567"));
        assertTrue(ArithmeticAnswer.isCorrect("-21", "-21"));
        assertTrue(ArithmeticAnswer.isCorrect("37 - 58 = -21", "-21"));
        assertTrue(ArithmeticAnswer.isCorrect("\u221221", "-21"));
    }

    @Test
    void wrongEmptyAndAmbiguousAnswersAreRejected() {
        for (String r : List.of("96", "The answer is 96.", "#### 96", "\\boxed{96}", "9 5", "95 96", "", "   ",
                "I don't know", "\\boxed{9 5}", "#### 95 96", "95.5", "37 + 58 = 96", "\\boxed{95} no, \\boxed{96}",
                "The answer is 96, not 95", "195", "9,5")) {
            assertFalse(ArithmeticAnswer.isCorrect(r, "95"), r);
        }
        assertFalse(ArithmeticAnswer.isCorrect("21", "-21"));
        assertFalse(ArithmeticAnswer.isCorrect(null, "95"));
    }

    @Test
    void extractionSaysWhatItRead() {
        assertEquals(Optional.of(new BigDecimal("95")), ArithmeticAnswer.extract("The answer is 95."));
        assertEquals(Optional.of(new BigDecimal("1234")), ArithmeticAnswer.extract(" 1,234 "));
        assertEquals(Optional.empty(), ArithmeticAnswer.extract("9 5"));
        assertEquals(Optional.empty(), ArithmeticAnswer.extract("no numbers here"));
        assertEquals(Optional.of(new BigDecimal("96")), ArithmeticAnswer.extract("\\boxed{95} no, \\boxed{96}"));
    }

    @Test
    void theRewardFunctionScoresWithDetail() {
        RewardFunction f = RewardFunctions.forTask("arithmetic");
        PromptRow p = PromptRow.text("arith-1", "What is 37 + 58?", "95", "add");
        assertEquals(new Reward(1.0, "correct"), f.score(p, "The answer is 95."));
        assertEquals(new Reward(0.0, "wrong"), f.score(p, "96"));
        assertEquals(new Reward(0.0, "format"), f.score(p, "ninety-five"));
        assertEquals(new Reward(-1.0, "format"), new ArithmeticReward(1, 0, -1).score(p, ""));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> f.score(PromptRow.text("x", "What is 1 + 1?", null, null), "2"));
        assertEquals("prompt x has no reference answer to check against", e.getMessage());
    }
}
