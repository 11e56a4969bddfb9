package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.gemma.config.Gemma3VisionConfig;
import dev.jtune.gemma.generate.Generator;
import dev.jtune.gemma.generate.SamplingOptions;
import dev.jtune.gemma.lora.PeftAdapter;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.GemmaTokenizer;
import dev.jtune.gemma.vision.Gemma3MultimodalModel;
import dev.jtune.gemma.vision.ImagePreprocessor;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code jtune generate --model_path DIR --prompt TEXT}: loads a checkpoint (and its tokenizer.json, or the
 * bundled Gemma 3 tokenizer) and streams the generated text as tokens come. {@code --chat} wraps the prompt in
 * the Gemma 3 chat template as a user turn and asks for the model's turn. {@code --adapter_path} applies a peft
 * LoRA adapter on top (fp32, peft's semantics); without {@code --model_path} its base is the adapter's
 * {@code base_model_name_or_path} when that is a local directory. A model directory with
 * {@code compact_vocabulary.json} (the embedded default's cpu model) takes the prompt's ids mapped from Gemma 3's
 * and gives back ids mapped to them before decoding.
 */
final class GenerateCommand {
    static final String USAGE = """
            usage: jtune generate [--model_path DIR] [--adapter_path DIR] --prompt TEXT [--chat] [--image FILE]...
                                  [--max_new_tokens N] [--temperature T] [--top_k K] [--top_p P] [--seed S] [--device D]

            Generates text from a Gemma 3 checkpoint directory, streaming it as tokens come (status lines go to stderr).
              --model_path DIR      the model: config.json + safetensors (an HF checkpoint, jtune's merged output or
                                    full fine-tuning output); with --adapter_path, the adapter's base. May be left out
                                    with --adapter_path when adapter_config.json's base_model_name_or_path is a local
                                    directory (as for ./jtune's jtune-output/)
              --adapter_path DIR    a peft LoRA adapter (adapter_config.json + adapter_model.safetensors, e.g. what
                                    training with --lora_enable wrote) applied on top of the model, unmerged
              --prompt TEXT         the prompt (required)
              --chat                wrap the prompt as a user turn of Gemma 3's chat template, ask for the model's turn
              --image FILE          an image (PNG, JPEG) before the prompt, as the Gemma 3 processor places it; may
                                    be repeated; needs an image-text checkpoint (4B and larger)
              --max_new_tokens N    at most N new tokens (default 128); generation also stops at <eos>/<end_of_turn>
              --temperature T       0 is greedy (default 0)
              --top_k K             sample among the K most likely tokens (default 0: all)
              --top_p P             sample from the smallest set whose probability reaches P (default 1: all)
              --seed S              the sampling seed (default 0)
              --device D            auto, cpu, cuda or cuda:N (default auto: the first GPU, else the cpu)
              --debug               with an error, print its stack trace too

            The tokenizer is the model directory's tokenizer.json, else Gemma 3's (bundled). A model directory with
            compact_vocabulary.json (./jtune's cpu model) has the prompt's ids mapped into its vocabulary and its
            output mapped back; prompt tokens outside it are left out, with a warning.
            """;

    private GenerateCommand() {
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (Main.wantsHelp(args)) {
            out.print(USAGE);
            return 0;
        }
        Path model = null;
        Path adapter = null;
        String prompt = null;
        int maxNew = 128;
        double temperature = 0;
        int topK = 0;
        double topP = 1;
        long seed = 0;
        String device = "auto";
        boolean chat = false;
        List<Path> images = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--chat")) {
                chat = true;
                continue;
            }
            if (!a.startsWith("--")) {
                err.println("jtune generate: unexpected argument '" + a + "' (flags are --name value; jtune generate --help)");
                return 2;
            }
            if (i + 1 >= args.length) {
                err.println("jtune generate: " + a + " needs a value (jtune generate --help)");
                return 2;
            }
            String v = args[++i];
            try {
                switch (a) {
                    case "--model_path" -> model = Path.of(v);
                    case "--adapter_path" -> adapter = Path.of(v);
                    case "--prompt" -> prompt = v;
                    case "--image" -> images.add(Path.of(v));
                    case "--max_new_tokens" -> maxNew = Integer.parseInt(v);
                    case "--temperature" -> temperature = Double.parseDouble(v);
                    case "--top_k" -> topK = Integer.parseInt(v);
                    case "--top_p" -> topP = Double.parseDouble(v);
                    case "--seed" -> seed = Long.parseLong(v);
                    case "--device" -> device = v;
                    default -> {
                        err.println("jtune generate: unknown flag " + a + " (jtune generate --help)");
                        return 2;
                    }
                }
            } catch (NumberFormatException e) {
                err.println("jtune generate: " + a + " expects a number, got '" + v + "'");
                return 2;
            }
        }
        if (prompt == null || (model == null && adapter == null)) {
            err.println("jtune generate: " + (prompt == null ? "--prompt" : "--model_path") + " is required (jtune generate --help)");
            return 2;
        }
        SamplingOptions sampling;
        try {
            sampling = new SamplingOptions(maxNew, temperature, topK, topP, seed);
        } catch (IllegalArgumentException e) {
            err.println("jtune generate: " + e.getMessage());
            return 2;
        }
        if (adapter != null) {
            AdapterDir.Base chosen = AdapterDir.base(adapter, model, "generate", err);
            if (chosen.dir() == null) {
                return chosen.exitStatus();
            }
            model = chosen.dir();
        }
        if (!Files.isRegularFile(model.resolve("config.json"))) {
            err.println("jtune generate: no config.json in " + model.toAbsolutePath());
            return 1;
        }
        Device d = TrainCommand.device(device);
        GemmaTokenizer tokenizer = Files.isRegularFile(model.resolve("tokenizer.json"))
                ? GemmaTokenizer.load(model.resolve("tokenizer.json")) : GemmaTokenizer.bundled();
        Gemma3VisionConfig vision = images.isEmpty() ? null : Gemma3VisionConfig.read(model).orElse(null);
        if (!images.isEmpty() && vision == null) {
            err.println("jtune generate: --image needs an image-text checkpoint, but " + model.toAbsolutePath()
                    + " is a text-only Gemma 3 (its config.json has no vision_config)");
            return 1;
        }
        if (vision != null) {
            dev.jtune.gemma.vision.ImagePreprocessor.checkSettings(model, vision);
        }
        // each image as the processor places it: <start_of_image> before the text, expanded to its soft tokens
        String withImages = ChatTemplate.BOI.repeat(images.size()) + prompt;
        ChatTemplate template = vision == null ? new ChatTemplate(tokenizer) : new ChatTemplate(tokenizer).withImages(vision.mmTokensPerImage());
        int[] ids = chat
                ? template.encode(List.of(new ChatTemplate.Message("user", withImages)), ChatTemplate.GenerationPrompt.ADD).ids()
                : tokenizer.encode(vision == null ? withImages : ChatTemplate.expandImages(withImages, vision.mmTokensPerImage()),
                        GemmaTokenizer.Bos.ADD);
        Path compactFile = model.resolve(CompactVocabulary.FILE);
        CompactVocabulary compact = Files.isRegularFile(compactFile) ? CompactVocabulary.read(compactFile) : null;
        if (compact != null) {
            ids = toCompact(ids, compact, compactFile, tokenizer, err);
        }
        try (Scope s = Scope.open("generate", MemoryCategory.WEIGHTS)) {
            DType dtype = d.kind() == Device.Kind.CUDA ? DType.BF16 : DType.F32;
            Gemma3MultimodalModel multimodal = vision == null ? null : Gemma3MultimodalModel.load(model, d, dtype);
            Gemma3Model m = multimodal != null ? multimodal.text() : Gemma3Model.load(model, d, dtype);
            TrainCommand.requireTokenIds(ids, m.config().vocabSize(), tokenizer, model.toAbsolutePath(),
                    " (a model with a compacted vocabulary needs its " + CompactVocabulary.FILE + ")");
            if (adapter != null) {
                PeftAdapter.Loaded loaded = multimodal != null ? AdapterDir.apply(adapter, multimodal, model) : AdapterDir.apply(adapter, m, model);
                List<String> nonLora = multimodal == null ? List.of() : AdapterDir.applyNonLora(adapter, multimodal);
                err.println("jtune generate: LoRA adapter " + adapter.toAbsolutePath() + " (" + loaded.adapters().size() + " modules, r "
                        + loaded.config().rank() + ")" + (nonLora.isEmpty() ? "" : " with the " + nonLora.size() + " tensors of its "
                        + dev.jtune.train.loop.Trainable.NON_LORA_FILE) + " on " + model.toAbsolutePath());
            }
            Generator generator = compact == null ? Generator.forModel(m) : new Generator(m, stopIds(m, compact));
            List<Integer> generated = new ArrayList<>();
            String[] shown = {""};
            Tensor pixels = multimodal == null ? null : new ImagePreprocessor(vision).pixelValues(images, d);
            Generator.Prefill prefill = multimodal == null ? (p, cache) -> m.hiddenCached(p, 0, cache)
                    : (p, cache) -> multimodal.promptHidden(p, pixels, cache);
            generator.generate(ids, prefill, sampling, t -> {
                generated.add(compact == null ? t : compact.toGemma(t));
                String text = tokenizer.decode(generated.stream().mapToInt(Integer::intValue).toArray(), GemmaTokenizer.SpecialTokens.SKIP);
                if (text.startsWith(shown[0])) { // print only what is new (a byte-fallback character may need several tokens)
                    out.print(text.substring(shown[0].length()));
                    out.flush();
                    shown[0] = text;
                }
            });
            out.println();
        }
        return 0;
    }

    /** The prompt in the compact vocabulary; tokens it lacks are left out, with a warning naming them. */
    private static int[] toCompact(int[] ids, CompactVocabulary compact, Path file, GemmaTokenizer tokenizer, PrintStream err) {
        List<Integer> kept = new ArrayList<>();
        List<String> dropped = new ArrayList<>();
        for (int id : ids) {
            if (compact.contains(id)) {
                kept.add(compact.toCompact(id));
            } else {
                dropped.add("'" + tokenizer.decode(new int[] {id}, GemmaTokenizer.SpecialTokens.KEEP) + "'");
            }
        }
        if (!dropped.isEmpty()) {
            err.println("jtune generate: warning: " + dropped.size() + " prompt token(s) are not in the model's compacted vocabulary ("
                    + file.toAbsolutePath() + ", " + compact.size() + " tokens) and are left out: " + String.join(", ", dropped));
        }
        if (kept.isEmpty()) {
            throw new CommandException("no token of the prompt is in the model's compacted vocabulary (" + file.toAbsolutePath() + ")");
        }
        return kept.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Gemma 3's stop tokens (the config's eos ids and <end_of_turn>, 106) that the compact vocabulary has, as its ids. */
    private static Set<Integer> stopIds(Gemma3Model m, CompactVocabulary compact) {
        Set<Integer> stops = new HashSet<>();
        Set<Integer> gemma = new HashSet<>(m.config().eosTokenIds());
        gemma.add(106);
        for (int id : gemma) {
            if (compact.contains(id)) {
                stops.add(compact.toCompact(id));
            }
        }
        return stops;
    }
}
