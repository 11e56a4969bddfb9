package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.cuda.CudaBackend;
import dev.jtune.engine.memory.MemoryStats;
import dev.jtune.engine.meta.MetaBackend;
import dev.jtune.engine.quant.Nf4;
import dev.jtune.engine.quant.Nf4Scales;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.train.args.TrainArgs;
import dev.jtune.train.loop.Trainable;
import dev.jtune.train.loop.Trainer;
import dev.jtune.train.report.MemoryReport;

import java.util.Optional;

/**
 * The predicted memory of one training step on a GPU, before any weight exists: the model of {@code config.json}
 * is built on the meta device (shapes and allocations, no data), quantized and given adapters as the arguments ask,
 * and {@link Trainer#measureStep} runs the trainer's own step on a synthetic batch of {@code --max_seq_length}
 * tokens per sequence; the meta backend's caching allocator counts what the GPU's would. An image-text model is built
 * whole (tower and projector dense, trained or frozen as asked) and its sequences hold images: the tower's weights,
 * its transient (frozen) or activations (trained) fall in the same categories as the language model's.
 */
final class MemoryPlanner {
    private MemoryPlanner() {
    }

    /** The allocator's rounding of the NF4 lookup tables (the 16 codes and the 256-entry dynamic map, fp32). */
    private static final long NF4_TABLE_BYTES = roundUp((long) (Nf4.codes().length + Nf4.dynamicMap().length) * Float.BYTES, 512);

    /** A prediction: the report by category, and the bytes the device must hold (reserved peak plus resident buffers). */
    record Prediction(MemoryReport report, long deviceBytes) {
    }

    /**
     * What is planned: the language model's configuration and, for an image-text checkpoint, its tower's with the
     * images each sequence of a micro-batch holds (their soft tokens are part of the sequence's length); and the
     * longest sequence the run's data makes ({@code sequenceTokens}; 0: {@code --max_seq_length}, as without data). A
     * micro-batch is padded to its longest sequence only, so the data's longest bounds every step: planning at
     * {@code --max_seq_length} over-predicted a run of shorter records by their ratio (270M QLoRA at 8K on records of
     * 6,956 tokens: activations 0.481 / 0.424 GiB predicted / measured, backward 0.398 / 0.338, both ~8192/6956).
     */
    record Model(Gemma3Config text, Optional<Gemma3VisionConfig> vision, int imagesPerSequence, int sequenceTokens, int ranks) {
        Model {
            java.util.Objects.requireNonNull(text, "text");
            java.util.Objects.requireNonNull(vision, "vision");
            if (ranks < 1) {
                throw new IllegalArgumentException("a world of " + ranks + " ranks");
            }
            if (imagesPerSequence < 0 || (vision.isEmpty() && imagesPerSequence > 0)) {
                throw new IllegalArgumentException(imagesPerSequence + " images per sequence " + (vision.isEmpty() ? "without a vision tower" : ""));
            }
            if (sequenceTokens < 0) {
                throw new IllegalArgumentException("sequence tokens must be 0 (--max_seq_length) or positive, got " + sequenceTokens);
            }
        }

        Model(Gemma3Config text, Optional<Gemma3VisionConfig> vision, int imagesPerSequence, int sequenceTokens) {
            this(text, vision, imagesPerSequence, sequenceTokens, 1);
        }

        Model(Gemma3Config text, Optional<Gemma3VisionConfig> vision, int imagesPerSequence) {
            this(text, vision, imagesPerSequence, 0);
        }

        static Model text(Gemma3Config text) {
            return new Model(text, Optional.empty(), 0, 0);
        }

        /** The same, planned as one rank of a data-parallel world of {@code n} (its ZeRO shard of the state, and of the gradients in stage 2). */
        Model inWorldOf(int n) {
            return new Model(text, vision, imagesPerSequence, sequenceTokens, n);
        }

        /** The tokens of each planned sequence under {@code a}: the data's longest, at most {@code --max_seq_length}. */
        int tokens(TrainArgs a) {
            return sequenceTokens > 0 ? Math.min(sequenceTokens, a.maxSeqLength()) : a.maxSeqLength();
        }
    }

    /** The prediction for a run on a GPU ({@code jtune plan}): {@code --bf16} decides the dtype. */
    static Prediction predict(Gemma3Config config, TrainArgs a) {
        return predict(config, a, Device.Kind.CUDA);
    }

    /** {@link #predict(Model, TrainArgs, Device.Kind)} of a text model. */
    static Prediction predict(Gemma3Config config, TrainArgs a, Device.Kind target) {
        return predict(Model.text(config), a, target);
    }

    /**
     * The prediction for a run on {@code target}: on a GPU in bf16 when {@code --bf16} asks, with the per-GPU buffers
     * meta does not model; on the cpu in fp32 (as the cpu backend trains), without them.
     */
    static Prediction predict(Model planned, TrainArgs a, Device.Kind target) {
        boolean gpu = target == Device.Kind.CUDA;
        DType dtype = dtype(a, target);
        MetaBackend meta = MetaBackend.instance();
        synchronized (MemoryPlanner.class) { // the meta backend is one per process
            meta.reset();
            MemoryStats stats;
            try (Scope plan = Scope.open("plan", MemoryCategory.WEIGHTS)) {
                // an image-text model whole: the tower and projector dense (trained or frozen as asked), the language model
                // quantized as asked, as TrainCommand loads it
                Gemma3MultimodalModel multimodal = planned.vision().isEmpty() ? null
                        : Gemma3MultimodalModel.random(planned.text(), planned.vision().get(), Device.META, dtype, 0);
                Gemma3Model model = multimodal != null ? multimodal.text() : Gemma3Model.random(planned.text(), Device.META, dtype, 0);
                if (a.bits() == 4) {
                    model.quantizeLinearWeights(a.doubleQuant() ? Nf4Scales.DOUBLE_QUANTIZED : Nf4Scales.FP32);
                }
                Trainable trainable;
                if (multimodal != null) {
                    trainable = a.loraEnable() ? Trainable.lora(multimodal, TrainCommand.loraConfig(a), a.seed(), "plan", TrainCommand.trainedParts(a),
                            TrainCommand.adaptedParts(a))
                            : Trainable.full(multimodal, TrainCommand.trainedParts(a), "plan");
                } else {
                    trainable = a.loraEnable() ? Trainable.lora(model, TrainCommand.loraConfig(a), a.seed(), "plan") : Trainable.full(model, "plan");
                }
                // as many images as the sequence holds whole (a longer record is cut to --max_seq_length)
                int tokens = planned.tokens(a);
                int images = planned.vision().map(v -> Math.min(planned.imagesPerSequence(), tokens / v.mmTokensPerImage())).orElse(0);
                // one rank of the world: the optimizer state sharded as the run will shard it
                stats = Trainer.measureStep(TrainCommand.config(a, planned.ranks()), trainable, a.perDeviceTrainBatchSize(), tokens, images);
            }
            long resident = gpu ? CudaBackend.MATMUL_WORKSPACE_BYTES + (a.bits() == 4 ? NF4_TABLE_BYTES : 0) : 0;
            String label = gpu ? "per-GPU resident (cuBLASLt workspace" + (a.bits() == 4 ? ", NF4 tables)" : ")")
                    : "per-GPU resident (none on the cpu)";
            MemoryReport report = MemoryReport.planned(stats, resident, label);
            return new Prediction(report, report.bytes("device_reserved_peak"));
        }
    }

    /** The weights' and activations' dtype of a run of {@code a} on {@code target}, as TrainCommand decides. */
    static DType dtype(TrainArgs a, Device.Kind target) {
        return target == Device.Kind.CUDA && a.bf16() ? DType.BF16 : DType.F32;
    }

    private static long roundUp(long v, long to) {
        return (v + to - 1) / to * to;
    }
}
