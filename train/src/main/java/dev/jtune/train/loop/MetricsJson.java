package dev.jtune.train.loop;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.JsonSerializer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.module.SimpleModule;

import java.io.IOException;

/**
 * The one JSON mapper for metrics and trainer state: doubles that are not finite become {@code null} (JSON has no
 * NaN, and a string "NaN" breaks every reader), and {@code null} reads back as NaN.
 */
public final class MetricsJson {
    private MetricsJson() {
    }

    public static final ObjectMapper MAPPER = new ObjectMapper().registerModule(new SimpleModule("finite-or-null")
            .addSerializer(Double.class, new FiniteOrNull())
            .addSerializer(double.class, new FiniteOrNull())
            .addDeserializer(Double.class, new NullAsNaN())
            .addDeserializer(double.class, new NullAsNaN()));

    private static final class FiniteOrNull extends JsonSerializer<Double> {
        @Override
        public void serialize(Double v, JsonGenerator g, SerializerProvider p) throws IOException {
            if (v == null || !Double.isFinite(v)) {
                g.writeNull();
            } else {
                g.writeNumber(v);
            }
        }
    }

    private static final class NullAsNaN extends JsonDeserializer<Double> {
        @Override
        public Double deserialize(JsonParser p, DeserializationContext c) throws IOException {
            return p.getValueAsDouble(Double.NaN);
        }

        @Override
        public Double getNullValue(DeserializationContext c) {
            return Double.NaN;
        }
    }
}
