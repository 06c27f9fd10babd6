package org.sparkrlhf.datasets.tables;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The notebooks under {@code notebooks/} against the tables they read: each is a valid notebook
 * (nbformat 4 JSON), each code cell compiles as Python (with {@code python3}, skipped without it),
 * and every table and column the code names exists in the tables' schemas.
 *
 * <p>Names are found in the PySpark forms the notebooks use: a table is {@code load(f"{TABLES}/name")};
 * a column is a string argument of {@code F.col}, {@code F.first}, ... or of {@code select},
 * {@code groupBy}, {@code orderBy}, {@code pivot}, ..., or a row index {@code ["name"]}; a name made by
 * {@code .alias("c")} or listed as a value of {@code pivot("x", [...])} counts as a column, and {@code "c.field"} (or {@code "c.*"}) of an alias of
 * {@code F.explode("array_of_structs")} must be a field of the array's elements (and is a column
 * {@code field} from then on).
 */
class NotebooksTest {
    private static final Path NOTEBOOKS = Path.of("..", "notebooks");
    private static final Map<String, StructType> TABLES = Map.of(RolloutsTable.LAYOUT.name(), RolloutsTable.SCHEMA,
            MetricsTable.LAYOUT.name(), MetricsTable.SCHEMA, PlansTable.LAYOUT.name(), PlansTable.SCHEMA);
    private static final Pattern TABLE = Pattern.compile("\\{TABLES}/(\\w+)");
    private static final Pattern COLUMN_FUNCTION = Pattern.compile(
            "F\\.(?:col|first|last|max|min|avg|mean|sum|count|explode|collect_list|collect_set|countDistinct)\\(");
    private static final Pattern COLUMN_METHOD = Pattern.compile(
            "\\.(?:select|groupBy|orderBy|sort|pivot|drop|dropDuplicates|sortWithinPartitions)\\(");
    private static final Pattern ROW_INDEX = Pattern.compile("\\[\"(\\w+)\"]");
    private static final Pattern STRING = Pattern.compile("\"((?:[^\"\\\\]|\\\\.)*)\"");
    private static final Pattern EXPLODE_ALIAS = Pattern.compile("F\\.explode\\(\"(\\w+)\"\\)\\.alias\\(\"(\\w+)\"\\)");
    private static final Pattern ALIAS = Pattern.compile("\\.alias\\(\"(\\w+)\"\\)");
    private static final Pattern PIVOT_VALUES = Pattern.compile("\\.pivot\\(\"\\w+\",\\s*\\[([^]]*)]");

    static Stream<Path> notebooks() throws IOException {
        try (Stream<Path> files = Files.list(NOTEBOOKS)) {
            List<Path> found = files.filter(p -> p.toString().endsWith(".ipynb")).sorted().toList();
            assertFalse(found.isEmpty(), "no notebooks in " + NOTEBOOKS.toAbsolutePath());
            return found.stream();
        }
    }

    /** The code cells' sources, after checking the notebook's structure. */
    static List<String> codeCells(Path notebook) throws IOException {
        JsonNode root = new ObjectMapper().readTree(notebook.toFile());
        assertTrue(root.isObject(), notebook + ": not a JSON object");
        assertEquals(4, root.path("nbformat").asInt(-1), notebook + ": nbformat");
        assertTrue(root.path("nbformat_minor").isInt(), notebook + ": nbformat_minor");
        assertTrue(root.path("metadata").isObject(), notebook + ": metadata");
        JsonNode cells = root.path("cells");
        assertTrue(cells.isArray() && !cells.isEmpty(), notebook + ": cells");
        List<String> code = new ArrayList<>();
        for (int i = 0; i < cells.size(); i++) {
            JsonNode cell = cells.get(i);
            String where = notebook + ": cell " + i;
            String type = cell.path("cell_type").asText();
            assertTrue(Set.of("code", "markdown", "raw").contains(type), where + ": cell_type " + type);
            assertTrue(cell.path("metadata").isObject(), where + ": metadata");
            JsonNode source = cell.path("source");
            StringBuilder text = new StringBuilder();
            if (source.isTextual()) {
                text.append(source.asText());
            } else {
                assertTrue(source.isArray(), where + ": source is neither a string nor a list of strings");
                for (JsonNode line : source) {
                    assertTrue(line.isTextual(), where + ": source has a line that is not a string");
                    text.append(line.asText());
                }
            }
            if (type.equals("code")) {
                assertTrue(cell.path("outputs").isArray(), where + ": outputs");
                assertTrue(cell.has("execution_count"), where + ": execution_count");
                code.add(text.toString());
            }
        }
        return code;
    }

    @ParameterizedTest
    @MethodSource("notebooks")
    void isAValidNotebookWhoseTablesAndColumnsExist(Path notebook) throws IOException {
        String code = String.join("\n", codeCells(notebook));
        Set<String> tables = new LinkedHashSet<>();
        Matcher t = TABLE.matcher(code);
        while (t.find()) {
            assertTrue(TABLES.containsKey(t.group(1)), notebook + " reads table '" + t.group(1) + "'; the tables are "
                    + TABLES.keySet());
            tables.add(t.group(1));
        }
        assertFalse(tables.isEmpty(), notebook + " reads no table");

        Set<String> columns = new LinkedHashSet<>();
        Map<String, StructType> structs = new HashMap<>();
        for (StructType schema : TABLES.values()) {
            for (StructField f : schema.fields()) {
                columns.add(f.name());
                DataType type = f.dataType();
                if (type instanceof ArrayType a && a.elementType() instanceof StructType s) {
                    structs.put(f.name(), s);
                }
            }
        }
        Map<String, StructType> aliases = new HashMap<>();
        Matcher e = EXPLODE_ALIAS.matcher(code);
        while (e.find()) {
            assertTrue(structs.containsKey(e.group(1)), notebook + ": explodes '" + e.group(1)
                    + "', not an array of structs of the tables");
            aliases.put(e.group(2), structs.get(e.group(1)));
        }
        Set<String> made = new LinkedHashSet<>();
        Matcher a = ALIAS.matcher(code);
        while (a.find()) {
            made.add(a.group(1));
        }
        Matcher v = PIVOT_VALUES.matcher(code);
        while (v.find()) {
            Matcher s = STRING.matcher(v.group(1));
            while (s.find()) {
                made.add(s.group(1));
            }
        }

        List<String> named = namedColumns(code);
        // "c.field" selected from an exploded struct is a column "field" from then on; "c.*", every field
        for (String name : named) {
            int dot = name.indexOf('.');
            StructType s = dot < 0 ? null : aliases.get(name.substring(0, dot));
            if (s != null) {
                made.addAll(name.endsWith(".*") ? List.of(s.fieldNames()) : List.of(name.substring(dot + 1)));
            }
        }
        List<String> problems = new ArrayList<>();
        for (String name : named) {
            int dot = name.indexOf('.');
            if (dot < 0) {
                if (!columns.contains(name) && !made.contains(name)) {
                    problems.add("'" + name + "' is no column of " + TABLES.keySet());
                }
            } else {
                StructType s = aliases.get(name.substring(0, dot));
                String field = name.substring(dot + 1);
                if (s == null) {
                    problems.add("'" + name + "': '" + name.substring(0, dot) + "' is no alias of an exploded column");
                } else if (!field.equals("*") && !List.of(s.fieldNames()).contains(field)) {
                    problems.add("'" + name + "': the elements have fields " + List.of(s.fieldNames()));
                }
            }
        }
        assertEquals(List.of(), problems, notebook.toString());
    }

    /** The string arguments in column positions, in order. */
    static List<String> namedColumns(String code) {
        List<String> out = new ArrayList<>();
        for (Pattern call : List.of(COLUMN_FUNCTION, COLUMN_METHOD)) {
            Matcher m = call.matcher(code);
            while (m.find()) {
                Matcher s = STRING.matcher(topLevelArguments(code, m.end()));
                while (s.find()) {
                    out.add(s.group(1));
                }
            }
        }
        Matcher r = ROW_INDEX.matcher(code);
        while (r.find()) {
            out.add(r.group(1));
        }
        return out;
    }

    /** The argument text of the call whose '(' ends before {@code from}, without nested calls' arguments. */
    private static String topLevelArguments(String code, int from) {
        StringBuilder out = new StringBuilder();
        int depth = 0;
        boolean inString = false;
        for (int i = from; i < code.length(); i++) {
            char c = code.charAt(i);
            if (inString) {
                if (depth == 0) out.append(c);
                if (c == '\\') {
                    if (depth == 0 && i + 1 < code.length()) out.append(code.charAt(i + 1));
                    i++;
                } else if (c == '"') {
                    inString = false;
                }
                continue;
            }
            if (c == '"') {
                inString = true;
                if (depth == 0) out.append(c);
            } else if (c == '(' || c == '[') {
                depth++;
            } else if (c == ')' || c == ']') {
                if (depth == 0) break;
                depth--;
            } else if (depth == 0) {
                out.append(c);
            }
        }
        return out.toString();
    }

    @ParameterizedTest
    @MethodSource("notebooks")
    void everyCodeCellCompilesAsPython(Path notebook) throws IOException, InterruptedException {
        Assumptions.assumeTrue(python() != null, "python3 is not installed: the notebooks' code is not compiled");
        List<String> cells = codeCells(notebook);
        for (int i = 0; i < cells.size(); i++) {
            Process p = new ProcessBuilder(python(), "-c",
                    "import sys; compile(sys.stdin.read(), sys.argv[1], 'exec')", notebook + " code cell " + i)
                    .redirectErrorStream(true).start();
            p.getOutputStream().write(cells.get(i).getBytes(StandardCharsets.UTF_8));
            p.getOutputStream().close();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "python3 did not finish");
            assertEquals(0, p.exitValue(), output);
        }
    }

    @org.junit.jupiter.api.Test
    void theColumnFinderSeesNestedAndIndexedNames() {
        String code = "df.select(\"a\", F.explode(\"calls\").alias(\"c\"), F.col(\"b\")).orderBy(\"c.x\")\n"
                + "x = df.first()[\"d\"]\nm[wanted].plot(title=\"not (a column)\")";
        assertEquals(List.of("calls", "b", "a", "c.x", "d"), namedColumns(code));
    }

    private static String python() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, "python3");
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }
}
