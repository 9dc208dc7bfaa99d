package udf.streaming;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The fast path of the stream's record checks (streaming/parse.py): the JSON texts of the
 * given fields of a <i>plain</i> line, in one pass over it; NULL when the line is not plain.
 *
 * <p>A plain line is a flat JSON object of at least one field whose keys are strings and
 * whose values are numbers, {@code null} or strings, where no string holds a backslash, a
 * double quote, a comma, a colon or a control character (so no escapes), with JSON
 * whitespace (space, tab, CR, LF) around the tokens. This is parse.PLAIN's grammar, which
 * the regular expressions this replaces matched (one for the line, one per field). A field
 * that appears twice has its last value, as in orjson; an absent field is NULL. A value's
 * text is as written: a string with its quotes, a number's spelling, {@code null}.
 */
public class PlainFields extends ScalarFunction {

    public @DataTypeHint("ARRAY<STRING>") String[] eval(String line, String... fields) {
        if (line == null) {
            return null;
        }
        int n = line.length();
        int i = skipSpace(line, 0);
        if (i >= n || line.charAt(i) != '{') {
            return null;
        }
        String[] out = new String[fields.length];
        i++;
        while (true) {
            int keyStart = skipSpace(line, i);
            int keyEnd = string(line, keyStart);
            if (keyEnd < 0) {
                return null;
            }
            i = skipSpace(line, keyEnd);
            if (i >= n || line.charAt(i) != ':') {
                return null;
            }
            int valueStart = skipSpace(line, i + 1);
            int valueEnd = value(line, valueStart);
            if (valueEnd < 0) {
                return null;
            }
            for (int f = 0; f < fields.length; f++) {
                String field = fields[f];
                if (field.length() == keyEnd - keyStart - 2
                        && line.startsWith(field, keyStart + 1)) {
                    out[f] = line.substring(valueStart, valueEnd);
                }
            }
            i = skipSpace(line, valueEnd);
            if (i >= n) {
                return null;
            }
            char c = line.charAt(i);
            if (c == '}') {
                return skipSpace(line, i + 1) == n ? out : null;
            }
            if (c != ',') {
                return null;
            }
            i++;
        }
    }

    private static int skipSpace(String s, int i) {
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
                break;
            }
            i++;
        }
        return i;
    }

    /** The end (after the closing quote) of a plain string at {@code i}; -1 if none is. */
    private static int string(String s, int i) {
        if (i >= s.length() || s.charAt(i) != '"') {
            return -1;
        }
        for (int j = i + 1; j < s.length(); j++) {
            char c = s.charAt(j);
            if (c == '"') {
                return j + 1;
            }
            if (c == '\\' || c == ',' || c == ':' || c < 0x20) {
                return -1;
            }
        }
        return -1;
    }

    /** The end of a plain value (string, number or null) at {@code i}; -1 if none is. */
    private static int value(String s, int i) {
        int n = s.length();
        if (i >= n) {
            return -1;
        }
        char c = s.charAt(i);
        if (c == '"') {
            return string(s, i);
        }
        if (c == 'n') {
            return s.startsWith("null", i) ? i + 4 : -1;
        }
        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        int j = i;
        if (s.charAt(j) == '-') {
            j++;
        }
        if (j >= n || !digit(s.charAt(j))) {
            return -1;
        }
        if (s.charAt(j) == '0') {
            j++;
        } else {
            while (j < n && digit(s.charAt(j))) {
                j++;
            }
        }
        if (j < n && s.charAt(j) == '.') {
            int k = j + 1;
            while (k < n && digit(s.charAt(k))) {
                k++;
            }
            if (k == j + 1) {
                return -1; // "1." is not a number
            }
            j = k;
        }
        if (j < n && (s.charAt(j) == 'e' || s.charAt(j) == 'E')) {
            int k = j + 1;
            if (k < n && (s.charAt(k) == '+' || s.charAt(k) == '-')) {
                k++;
            }
            int digits = k;
            while (k < n && digit(s.charAt(k))) {
                k++;
            }
            if (k == digits) {
                return -1; // "1e" is not a number
            }
            j = k;
        }
        return j;
    }

    private static boolean digit(char c) {
        return c >= '0' && c <= '9';
    }
}
