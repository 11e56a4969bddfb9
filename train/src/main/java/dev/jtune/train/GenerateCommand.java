package dev.jtune.train;

import dev.jtune.engine.DType;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Scope;
import dev.jtune.gemma.generate.Generator;
import dev.jtune.gemma.generate.SamplingOptions;
import dev.jtune.gemma.model.Gemma3Model;
import dev.jtune.gemma.tokenizer.ChatTemplate;
import dev.jtune.gemma.tokenizer.GemmaTokenizer;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code jtune generate --model_path DIR --prompt TEXT}: loads a checkpoint (and its tokenizer.json, or the
 * bundled Gemma 3 tokenizer) and streams the generated text as tokens come. {@code --chat} wraps the prompt in
 * the Gemma 3 chat template as a user turn and asks for the model's turn.
 */
final class GenerateCommand {
    private GenerateCommand() {
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        Path model = null;
        String prompt = null;
        int maxNew = 128;
        double temperature = 0;
        int topK = 0;
        double topP = 1;
        long seed = 0;
        String device = "auto";
        boolean chat = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--chat")) {
                chat = true;
                continue;
            }
            if (i + 1 >= args.length) {
                err.println("jtune generate: " + a + " needs a value");
                return 2;
            }
            String v = args[++i];
            try {
                switch (a) {
                    case "--model_path" -> model = Path.of(v);
                    case "--prompt" -> prompt = v;
                    case "--max_new_tokens" -> maxNew = Integer.parseInt(v);
                    case "--temperature" -> temperature = Double.parseDouble(v);
                    case "--top_k" -> topK = Integer.parseInt(v);
                    case "--top_p" -> topP = Double.parseDouble(v);
                    case "--seed" -> seed = Long.parseLong(v);
                    case "--device" -> device = v;
                    default -> {
                        err.println("jtune generate: unknown flag " + a);
                        return 2;
                    }
                }
            } catch (NumberFormatException e) {
                err.println("jtune generate: " + a + " expects a number, got '" + v + "'");
                return 2;
            }
        }
        if (model == null || prompt == null) {
            err.println("jtune generate: --model_path and --prompt are required");
            return 2;
        }
        if (!Files.isRegularFile(model.resolve("config.json"))) {
            err.println("jtune generate: no config.json in " + model.toAbsolutePath());
            return 1;
        }
        Device d = TrainCommand.device(device);
        GemmaTokenizer tokenizer = Files.isRegularFile(model.resolve("tokenizer.json"))
                ? GemmaTokenizer.load(model.resolve("tokenizer.json")) : GemmaTokenizer.bundled();
        int[] ids = chat
                ? new ChatTemplate(tokenizer).encode(List.of(new ChatTemplate.Message("user", prompt)), true).ids()
                : tokenizer.encode(prompt, true);
        try (Scope s = Scope.open("generate", MemoryCategory.WEIGHTS)) {
            Gemma3Model m = Gemma3Model.load(model, d, d.kind() == Device.Kind.CUDA ? DType.BF16 : DType.F32);
            List<Integer> generated = new ArrayList<>();
            String[] shown = {""};
            Generator.forModel(m).generate(ids, new SamplingOptions(maxNew, temperature, topK, topP, seed), t -> {
                generated.add(t);
                String text = tokenizer.decode(generated.stream().mapToInt(Integer::intValue).toArray(), true);
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
}
