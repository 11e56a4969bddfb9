package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.io.FileTrees;
import dev.jtune.gemma.config.Gemma3Config;
import dev.jtune.gemma.lora.LoraMerge;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.safetensors.SafeTensorsModel;
import dev.jtune.gemma.safetensors.TensorInfo;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.train.loop.Trainable;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * {@code jtune merge --model_path BASE --adapter_path DIR --output_dir OUT}: loads the base in its own dtype, folds
 * the peft adapter into it ({@link LoraMerge#merge}: W += alpha/r * B A in fp32, rounded once) and writes an HF
 * checkpoint in that dtype, with the base's tokenizer files, generation_config.json and compact_vocabulary.json; an
 * image-text base whole (tower, projector, merged language model; the parts trained beside the adapter from its
 * non_lora_state_dict). The checkpoint is written to a hidden sibling of OUT and renamed to OUT when complete.
 */
final class MergeCommand {
    static final String USAGE = """
            usage: jtune merge --adapter_path DIR --output_dir OUT [--model_path BASE] [--device D]

            Folds a peft LoRA adapter into its base model (W += alpha/r * B A, computed in fp32 and rounded once) and
            writes a full HF checkpoint (config.json + safetensors, sharded above 2 GB) to OUT in the base's dtype,
            with the base's tokenizer files, generation_config.json and compact_vocabulary.json when present. An
            adapter trained on a 4-bit (NF4, --bits 4) base is merged into the base's dense weights.
              --model_path BASE     the base model directory (config.json + safetensors); default: the adapter's
                                    base_model_name_or_path when that is a local directory
              --adapter_path DIR    the adapter: adapter_config.json + adapter_model.safetensors
              --output_dir OUT      a new or empty directory, neither BASE, DIR nor inside them
              --device D            where to merge: auto, cpu, cuda or cuda:N (default auto: the first GPU, else the cpu)
              --debug               with an error, print its stack trace too

            The result loads as a model of its own: jtune generate --model_path OUT, or transformers'
            AutoModelForCausalLM.from_pretrained(OUT). An image-text base (Gemma3ForConditionalGeneration) is written
            whole, in its own key layout and with its processor files: the vision tower and projector as the adapter's
            non_lora_state_dict.safetensors has them when they trained beside it, else the base's.
            """;

    /** The files of a base model directory copied beside the merged weights, when present. */
    static final List<String> COPIED = List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "tokenizer.model", "added_tokens.json", "chat_template.jinja", "generation_config.json", CompactVocabulary.FILE,
            "preprocessor_config.json", "processor_config.json");

    private MergeCommand() {
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (Main.wantsHelp(args)) {
            out.print(USAGE);
            return 0;
        }
        Path base = null;
        Path adapter = null;
        Path output = null;
        String device = "auto";
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) {
                err.println("jtune merge: unexpected argument '" + a + "' (flags are --name value; jtune merge --help)");
                return 2;
            }
            if (i + 1 >= args.length) {
                err.println("jtune merge: " + a + " needs a value (jtune merge --help)");
                return 2;
            }
            String v = args[++i];
            switch (a) {
                case "--model_path" -> base = Path.of(v);
                case "--adapter_path" -> adapter = Path.of(v);
                case "--output_dir" -> output = Path.of(v);
                case "--device" -> device = v;
                default -> {
                    err.println("jtune merge: unknown flag " + a + " (jtune merge --help)");
                    return 2;
                }
            }
        }
        if (adapter == null || output == null) {
            err.println("jtune merge: " + (adapter == null ? "--adapter_path" : "--output_dir") + " is required (jtune merge --help)");
            return 2;
        }
        AdapterDir.Base chosen = AdapterDir.base(adapter, base, "merge", err);
        if (chosen.dir() == null) {
            return chosen.exitStatus();
        }
        base = chosen.dir();
        if (!Files.isRegularFile(base.resolve("config.json"))) {
            err.println("jtune merge: no config.json in " + base.toAbsolutePath() + " (--model_path must be a model directory: config.json + safetensors)");
            return 1;
        }
        String placement = placementProblem(output, base, adapter);
        if (placement != null) {
            err.println("jtune merge: " + placement);
            return 2;
        }
        Device d = TrainCommand.device(device);
        DType dtype = baseDType(base, err);
        try (Scope s = Scope.open("merge", MemoryCategory.WEIGHTS)) {
            // an image-text base is written whole: its tower and projector (as trained beside the adapter, when they were)
            // with the merged language model, in the base's key layout
            Gemma3MultimodalModel multimodal = Gemma3VisionConfig.read(base).isPresent() ? Gemma3MultimodalModel.load(base, d, dtype) : null;
            Gemma3Model model = multimodal != null ? multimodal.text() : Gemma3Model.load(base, d, dtype);
            PeftAdapter.Loaded loaded = multimodal != null ? AdapterDir.apply(adapter, multimodal, base) : AdapterDir.apply(adapter, model, base);
            List<String> nonLora = multimodal != null ? AdapterDir.applyNonLora(adapter, multimodal) : List.of();
            if (multimodal != null) {
                LoraMerge.merge(multimodal, loaded.adapters());
            } else {
                LoraMerge.merge(model, loaded.adapters());
            }
            write(dir -> {
                if (multimodal != null) {
                    multimodal.export(dir, LoraMerge.DEFAULT_SHARD_BYTES);
                } else {
                    LoraMerge.export(model, dir, LoraMerge.DEFAULT_SHARD_BYTES);
                }
            }, base, output);
            out.printf(Locale.ROOT, "merged the LoRA adapter %s (%d modules, r %d, alpha %s) into %s%s; wrote %s (%s%s)%n",
                    adapter.toAbsolutePath(), loaded.adapters().size(), loaded.config().rank(), number(loaded.config().alpha()),
                    base.toAbsolutePath(), nonLora.isEmpty() ? "" : " with the " + nonLora.size() + " tensors of " + Trainable.NON_LORA_FILE,
                    output.toAbsolutePath(), Gemma3Config.hfDTypeName(dtype), multimodal != null ? ", image-text" : "");
        }
        return 0;
    }

    private static String number(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }

    /**
     * Why OUT cannot be written (null when it can): it must not be BASE or the adapter directory or lie inside
     * either (symbolic links resolved), and must be new or an empty directory.
     */
    static String placementProblem(Path output, Path base, Path adapter) {
        Path out = FileTrees.resolved(output);
        for (Path dir : new Path[] {base, adapter}) {
            Path in = FileTrees.resolved(dir);
            String what = dir == base ? "--model_path " + in + " (the base model)" : "--adapter_path " + in + " (the adapter)";
            if (out.equals(in)) {
                return "--output_dir " + out + " is " + what + ": write the merged model to a directory of its own";
            }
            if (out.startsWith(in)) {
                return "--output_dir " + out + " is inside " + what + ": write the merged model to a directory outside it";
            }
        }
        if (Files.exists(output) && !Files.isDirectory(output)) {
            return "--output_dir " + out + " exists and is not a directory";
        }
        if (Files.isDirectory(output)) {
            List<String> entries = new ArrayList<>();
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(output)) {
                for (Path p : ds) {
                    entries.add(p.getFileName().toString());
                }
            } catch (IOException e) {
                throw new CommandException("listing " + out, e);
            }
            if (!entries.isEmpty()) {
                entries.sort(null);
                return "--output_dir " + out + " exists and is not empty (" + entries.size() + (entries.size() == 1 ? " entry: " : " entries: ")
                        + String.join(", ", entries.subList(0, Math.min(3, entries.size()))) + (entries.size() > 3 ? ", ..." : "")
                        + "): choose a new or empty directory";
            }
        }
        return null;
    }

    /**
     * The base's dtype: its embedding tensor's (what the weights are; an older jtune export's config could misname
     * it), else config.json's {@code dtype}/{@code torch_dtype}, else float32. A disagreement is noted on {@code err}.
     */
    static DType baseDType(Path base, PrintStream err) {
        Optional<DType> fromConfig = Gemma3Config.read(base).weightDType();
        DType fromTensors = null;
        try (SafeTensorsModel files = SafeTensorsModel.open(base)) {
            for (String name : dev.jtune.gemma.model.CheckpointLayout.embeddingNames()) {
                if (files.contains(name)) {
                    TensorInfo info = files.info(name);
                    if (info.isLoadable() && isFloat(info.dtype())) {
                        fromTensors = info.dtype();
                    }
                    break;
                }
            }
        }
        if (fromTensors != null && fromConfig.isPresent() && fromConfig.get() != fromTensors) {
            err.println("jtune merge: note: " + base.resolve("config.json").toAbsolutePath() + " says " + Gemma3Config.hfDTypeName(fromConfig.get())
                    + " but the weights are " + Gemma3Config.hfDTypeName(fromTensors) + "; writing " + Gemma3Config.hfDTypeName(fromTensors));
        }
        return fromTensors != null ? fromTensors : fromConfig.filter(MergeCommand::isFloat).orElse(DType.F32);
    }

    private static boolean isFloat(DType t) {
        return t == DType.BF16 || t == DType.F16 || t == DType.F32 || t == DType.F64;
    }

    /** Exports into a hidden sibling of {@code output}, copies the base's side files, then renames it to {@code output}. */
    private static void write(java.util.function.Consumer<Path> export, Path base, Path output) {
        Path out = output.toAbsolutePath().normalize();
        Path tmp = null;
        try {
            Files.createDirectories(out.getParent());
            tmp = Files.createTempDirectory(out.getParent(), "." + out.getFileName() + ".merging-");
            export.accept(tmp);
            for (String f : COPIED) {
                if (Files.isRegularFile(base.resolve(f))) {
                    Files.copy(base.resolve(f), tmp.resolve(f), StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
            if (Files.isDirectory(out)) {
                Files.delete(out); // empty (checked before): the finished directory takes its place
            }
            Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
            tmp = null;
        } catch (IOException e) {
            throw new CommandException("writing the merged model to " + out, e);
        } finally {
            if (tmp != null) {
                try {
                    FileTrees.deleteTree(tmp);
                } catch (IOException e) {
                    // best effort: a hidden partial directory is left behind, and the write's own failure is reported
                }
            }
        }
    }
}
