package udf.streaming;

/** A counted event of the user, as the operator keeps it: its type, time, value and segment fields. */
record Event(String type, long ts, Double value, String[] segs) {

    double valueOrZero() {
        return value == null ? 0.0 : value;
    }

    String seg(int field) {
        return segs == null || field >= segs.length ? null : segs[field];
    }

    void write(Codec.Output out) {
        out.writeUTF(type);
        out.writeLong(ts);
        out.writeBoolean(value != null);
        if (value != null) {
            out.writeDouble(value);
        }
        out.writeInt(segs == null ? -1 : segs.length);
        for (int i = 0; segs != null && i < segs.length; i++) {
            Codec.writeText(out, segs[i]);
        }
    }

    /** Past an event {@link #write} wrote, without decoding it. */
    static void skip(Codec.Input in) {
        in.skipUTF();
        in.skip(Long.BYTES);
        if (in.readBoolean()) {
            in.skip(Double.BYTES);
        }
        for (int n = in.readInt(); n > 0; n--) {
            if (in.readBoolean()) {
                in.skipUTF();
            }
        }
    }

    static Event read(Codec.Input in) {
        String type = in.readUTF();
        long ts = in.readLong();
        Double value = in.readBoolean() ? in.readDouble() : null;
        int n = in.readInt();
        String[] segs = n < 0 ? null : new String[n];
        for (int i = 0; i < n; i++) {
            segs[i] = Codec.readText(in);
        }
        return new Event(type, ts, value, segs);
    }
}
