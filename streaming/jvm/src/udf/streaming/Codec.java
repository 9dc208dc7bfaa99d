package udf.streaming;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The per-user operator's state entries as bytes. Flink keeps a {@code BYTES} entry as it is;
 * a {@code ROW} or {@code ARRAY} entry it converts between Java objects and its binary rows on
 * every read and write, which cost more than the operator's own work.
 *
 * <p>Entries are read and written on a plain byte array: big-endian numbers, text as its UTF-8
 * length and bytes. {@code DataInputStream} over a {@code ByteArrayInputStream} (the first
 * version) took a lock and a virtual call per number, and decoding was a fifth of the
 * operator's time: every event decodes its clock hour's counted events (up to the spam cap).
 *
 * <p>Text read back is interned ({@link Interner}): the same few names (experiments, groups,
 * event types, segment values) are read on every call, and a string made once keeps its hash
 * for the maps they key, and compares equal to itself at once.
 */
final class Codec {

    private static final VarHandle INT =
            MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle LONG =
            MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

    interface Writer {
        void write(Output out);
    }

    interface Reader<T> {
        T read(Input in);
    }

    private Codec() {}

    static byte[] encode(Writer writer) {
        Output out = new Output();
        writer.write(out);
        return out.toByteArray();
    }

    static <T> T decode(byte[] data, Reader<T> reader) {
        return reader.read(new Input(data));
    }

    static void writeText(Output out, String text) {
        out.writeBoolean(text != null);
        if (text != null) {
            out.writeUTF(text);
        }
    }

    static String readText(Input in) {
        return in.readBoolean() ? in.readUTF() : null;
    }

    /** A growing byte array written front to back. */
    static final class Output {
        private byte[] bytes;
        private int size;

        Output() {
            this(64);
        }

        /** Room for {@code capacity} bytes before it grows. */
        Output(int capacity) {
            bytes = new byte[capacity];
        }

        private void room(int n) {
            if (size + n > bytes.length) {
                bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, size + n));
            }
        }

        void writeBoolean(boolean value) {
            room(1);
            bytes[size++] = (byte) (value ? 1 : 0);
        }

        void writeInt(int value) {
            room(4);
            INT.set(bytes, size, value);
            size += 4;
        }

        void writeLong(long value) {
            room(8);
            LONG.set(bytes, size, value);
            size += 8;
        }

        void writeDouble(double value) {
            writeLong(Double.doubleToRawLongBits(value));
        }

        void writeUTF(String text) {
            byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
            writeInt(utf8.length);
            room(utf8.length);
            System.arraycopy(utf8, 0, bytes, size, utf8.length);
            size += utf8.length;
        }

        /** {@code n} bytes of {@code from} as they are, from {@code at}. */
        void write(byte[] from, int at, int n) {
            room(n);
            System.arraycopy(from, at, bytes, size, n);
            size += n;
        }

        byte[] toByteArray() {
            return size == bytes.length ? bytes : Arrays.copyOf(bytes, size);
        }
    }

    /** The texts read back, shared by the operator's threads (see {@link Interner}). */
    private static final Interner TEXTS = new Interner();

    /** A byte array read front to back. */
    static final class Input {
        private final byte[] bytes;
        private int at;

        Input(byte[] bytes) {
            this(bytes, 0);
        }

        /** Read from {@code at} on. */
        Input(byte[] bytes, int at) {
            this.bytes = bytes;
            this.at = at;
        }

        int position() {
            return at;
        }

        void skip(int n) {
            at += n;
        }

        /** Past a text {@link Output#writeUTF} wrote. */
        void skipUTF() {
            skip(readInt());
        }

        boolean readBoolean() {
            return bytes[at++] != 0;
        }

        int readInt() {
            int value = (int) INT.get(bytes, at);
            at += 4;
            return value;
        }

        long readLong() {
            long value = (long) LONG.get(bytes, at);
            at += 8;
            return value;
        }

        double readDouble() {
            return Double.longBitsToDouble(readLong());
        }

        String readUTF() {
            int length = readInt();
            String text = TEXTS.get(bytes, at, length);
            at += length;
            return text;
        }
    }

    /**
     * The strings last decoded, by their UTF-8 bytes: a direct-mapped cache of {@link #SLOTS}
     * (a slot holds the last text that hashed to it), shared by every thread of the JVM.
     *
     * <p>A slot holds one immutable {@link Entry}, bytes and text together, so a thread reads
     * either the whole old entry or the whole new one (a reference is written at once, and an
     * object's final fields are seen as its constructor set them); two threads that replace
     * a slot at once leave one of their entries, both right. It was one cache per thread (a
     * {@code ThreadLocal}): a Flink task thread holds many thread-locals, and their lookup
     * took 5% of the operator's samples (docs/benchmarks.md, "2026-12-06 (afternoon)").
     */
    static final class Interner {
        static final int SLOTS = 4096;

        private record Entry(byte[] encoded, String text) {}

        private final Entry[] slots = new Entry[SLOTS];

        String get(byte[] bytes, int at, int length) {
            int hash = 1;
            for (int i = at; i < at + length; i++) {
                hash = 31 * hash + bytes[i];
            }
            int slot = (hash ^ (hash >>> 16)) & (SLOTS - 1);
            Entry known = slots[slot];
            if (known != null
                    && Arrays.equals(known.encoded, 0, known.encoded.length, bytes, at, at + length)) {
                return known.text;
            }
            String text = new String(bytes, at, length, StandardCharsets.UTF_8);
            slots[slot] = new Entry(Arrays.copyOfRange(bytes, at, at + length), text);
            return text;
        }
    }
}
