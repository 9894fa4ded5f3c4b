package dev.rill.compat;

import java.util.HashMap;
import java.util.Map;

/** Minimal "--name value" argument parsing plus the bootstrap address from the environment. */
final class Args {
    private final Map<String, String> values = new HashMap<>();

    Args(String[] argv) {
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got: " + a);
            }
            values.put(a.substring(2), argv[++i]);
        }
    }

    String get(String name) {
        String v = values.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }

    String get(String name, String dflt) {
        return values.getOrDefault(name, dflt);
    }

    long getLong(String name, long dflt) {
        String v = values.get(name);
        return v == null ? dflt : Long.parseLong(v);
    }

    static String bootstrap() {
        String b = System.getenv("KAFKA_BOOTSTRAP");
        if (b == null || b.isEmpty()) {
            throw new IllegalStateException("KAFKA_BOOTSTRAP is not set");
        }
        return b;
    }
}
