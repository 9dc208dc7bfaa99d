package udf.streaming;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * The value of a JSON integer's text: an integer literal, {@code -?(0|[1-9][0-9]*)}, that fits
 * in 64 bits; NULL for any other text (a string with its quotes, a fraction, an exponent, a
 * leading zero, {@code null}, a number beyond 64 bits). The stream's record checks
 * (streaming/parse.py) read each integer field once with it: a NULL is then a wrong type when
 * the text is not an integer literal, else an integer out of range.
 */
public class JsonLong extends ScalarFunction {

    public Long eval(String text) {
        if (text == null) {
            return null;
        }
        int n = text.length();
        int i = n > 0 && text.charAt(0) == '-' ? 1 : 0;
        if (i == n || (text.charAt(i) == '0' && n > i + 1)) {
            return null;
        }
        for (int k = i; k < n; k++) {
            char c = text.charAt(k);
            if (c < '0' || c > '9') {
                return null;
            }
        }
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException beyond64Bits) {
            return null;
        }
    }
}
