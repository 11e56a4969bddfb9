package dev.jtune.train.args;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Unknown flags, bad values, refusals and contradictions: each names the flags, all are reported together. */
class ErrorsTest {
    @TempDir
    Path tmp;
    Fixture fx;

    @BeforeEach
    void setUp() {
        fx = new Fixture(tmp);
    }

    /** The one problem reported, checked to contain every fragment. */
    private String only(ArgsException e, String... fragments) {
        assertEquals(1, e.problems().size(), e.getMessage());
        String p = e.problems().getFirst();
        for (String f : fragments) {
            assertTrue(p.contains(f), "'" + f + "' in: " + p);
        }
        return p;
    }

    // ---- unknown flags, missing and bad values ----

    @Test
    void anUnknownFlagIsNamedWithTheClosestKnownOne() {
        only(fx.error("--learnin_rate", "3e-4"), "unknown flag --learnin_rate", "did you mean --learning_rate?");
        only(fx.error("--lora_r", "8"), "did you mean --lora_rank?");
        only(fx.error("--epochs", "2"), "did you mean --num_train_epochs?");
        only(fx.error("--per_device_batch_size", "2"),
                "did you mean --per_device_eval_batch_size or --per_device_train_batch_size?");
        only(fx.error("--learning_rat=1"), "(did you mean --learning_rate?)");
        only(fx.error("--gradient_accumulation", "2"), "did you mean --gradient_accumulation_steps?");
        String p = only(fx.error("--zzzzzzzzzzzz"), "unknown flag --zzzzzzzzzzzz");
        assertFalse(p.contains("did you mean"), p);
        only(fx.error("positional"), "unexpected argument 'positional'");
    }

    @Test
    void aMissingValueIsNamed() {
        only(fx.error("--learning_rate"), "--learning_rate needs a value (float)");
        only(fx.error("--output_dir", "--bf16"), "--output_dir needs a value (path)");
        only(fx.error("--model_path=", "--bits", "16"), "--model_path '' is empty");
    }

    @Test
    void aValueOfTheWrongTypeNamesFlagAndValue() {
        only(fx.error("--per_device_train_batch_size", "two"), "--per_device_train_batch_size two is not an integer");
        only(fx.error("--learning_rate=fast"), "--learning_rate fast is not a number");
        only(fx.error("--learning_rate", "NaN"), "--learning_rate NaN is not a finite number");
        only(fx.error("--save_strategy", "sometimes"), "--save_strategy sometimes is not one of no, steps, epoch");
        only(fx.error("--lr_scheduler_type", "cosin"), "--lr_scheduler_type cosin is not one of", "did you mean cosine?");
        only(fx.error("--device", "gpu"), "--device gpu is not a device");
        only(fx.error("--bits", "3"), "--bits 3 is not one of 16, 4");
        only(fx.error("--report_to", "csv"), "--report_to csv has 'csv'");
    }

    @Test
    void aValueOutOfRangeNamesFlagValueAndRange() {
        only(fx.error("--eval_ratio", "1.5"), "--eval_ratio 1.5 must be in [0, 1)");
        only(fx.error("--eval_ratio", "-0.1"), "--eval_ratio -0.1 must be in [0, 1)");
        only(fx.error("--lora_dropout", "1"), "--lora_dropout 1.0 must be in [0, 1)");
        only(fx.error("--adam_beta2", "1.0"), "--adam_beta2 1.0 must be in [0, 1)");
        only(fx.error("--adam_epsilon", "0"), "--adam_epsilon 0.0 must be in (0, inf]");
        only(fx.error("--per_device_train_batch_size", "0"), "--per_device_train_batch_size 0 must be at least 1");
        only(fx.error("--gradient_accumulation_steps", "-2"), "--gradient_accumulation_steps -2 must be at least 1");
        only(fx.error("--learning_rate", "-1e-4"), "--learning_rate -0.0001 must be at least 0");
        only(fx.error("--warmup_ratio", "1.5"), "--warmup_ratio 1.5 must be in [0, 1]");
        only(fx.error("--num_lora_modules", "0"), "--num_lora_modules 0 must be -1 (all) or at least 1");
        only(fx.error("--save_total_limit", "0"), "--save_total_limit 0 must be at least 1");
        only(fx.error("--max_seq_length", "1"), "--max_seq_length 1 must be at least 2");
        only(fx.error("--lora_rank", "0", "--lora_enable", "--freeze_llm"), "--lora_rank 0 must be at least 1");
    }

    // ---- refusals ----

    @Test
    void aDeepSpeedConfigThatIsNoFileNorJsonIsNamed() {
        only(fx.error("--deepspeed", "scripts/zero3.json"),
                "--deepspeed scripts/zero3.json is no file, nor inline JSON ({...}), nor base64 of a JSON object");
        only(fx.error("--deepspeed", "{\"bf16\": "), "--deepspeed's inline JSON is not valid JSON");
        only(fx.error("--deepspeed", fx.dir("ds").toString()), "is a directory");
    }

    @Test
    void fp16IsRefusedButFp16FalseIsFine() {
        only(fx.error("--fp16"), "--fp16 is refused", "Gemma 3 overflows fp16", "--bf16");
        only(fx.error("--fp16", "True"), "--fp16 is refused");
        assertFalse(fx.parse("--fp16", "False").bf16());
        assertTrue(fx.parse("--fp16=false", "--bf16").bf16());
    }

    @Test
    void unbuiltOptimizersAreRefusedByName() {
        for (String o : List.of("lion_8bit", "paged_lion_8bit", "paged_lion_32bit", "ademamix_8bit", "paged_ademamix_32bit",
                "rmsprop_bnb_8bit", "galore_adamw_8bit")) {
            only(fx.error("--optim", o), "--optim " + o + " is refused", "HF's " + o + " is not built",
                    "adamw_bnb_8bit (adamw_8bit), paged_adamw_8bit and paged_adamw_32bit");
        }
        only(fx.error("--optim", "adamw_torch_8bit"), "--optim adamw_torch_8bit is refused", "torchao's low-bit AdamW");
        only(fx.error("--optim", "adafactor"), "--optim adafactor is refused", "HF's adafactor is not built");
        only(fx.error("--optim", "madeup"), "--optim madeup is not one of adamw_torch, adamw_torch_fused, adamw_hf,"
                + " adamw_bnb_8bit, adamw_8bit, paged_adamw_8bit, paged_adamw_32bit, sgd");
    }

    @Test
    void unbuiltChoicesAreRefusedByName() {
        only(fx.error("--quant_type", "fp4", "--bits", "4", "--lora_enable", "--freeze_llm"), "--quant_type fp4 is refused",
                "FP4 is not built");
        only(fx.error("--bits", "8"), "--bits 8 is refused", "8-bit weights");
        only(fx.error("--lr_scheduler_type", "polynomial"), "--lr_scheduler_type polynomial is refused",
                "HF's polynomial schedule is not built");
        only(fx.error("--lr_scheduler_type", "cosine_with_restarts"), "cosine_with_restarts schedule is not built");
        only(fx.error("--save_strategy", "best"), "--save_strategy best is refused", "metric_for_best_model");
        only(fx.error("--use_dora", "True"), "--use_dora is refused", "DoRA is not built");
        only(fx.error("--vision_lora", "--lora_enable", "--freeze_llm"), "--vision_lora needs --freeze_vision_tower True");
        only(fx.error("--vision_lora", "--freeze_vision_tower"), "--vision_lora needs --lora_enable");
        only(fx.error("--lora_bias", "all"), "--lora_bias all is refused", "only 'none'");
        only(fx.error("--lora_weight_path", "adapter/", "--lora_enable", "--freeze_llm"), "--lora_weight_path adapter",
                "no adapter_config.json: not a peft adapter directory");
    }

    @Test
    void offlineReportersAreRefusedByName() {
        only(fx.error("--report_to", "wandb"), "--report_to wandb is refused", "wandb is not available", "offline");
        only(fx.error("--report_to", "tensorboard"), "tensorboard is not available");
        only(fx.error("--report_to", "wandb,tensorboard"), "wandb and tensorboard are not available");
    }

    // ---- contradictions ----

    @Test
    void loraNeedsAFrozenBase() {
        only(fx.error("--lora_enable"), "--lora_enable needs --freeze_llm");
        // --freeze_llm alone trains an image-text model's tower and projector (a text model refuses it when loaded: ImageCliTest)
        only(fx.error("--freeze_llm", "--freeze_vision_tower", "--freeze_projector"), "without --lora_enable leave nothing to train");
    }

    @Test
    void fourBitNeedsLora() {
        only(fx.error("--bits", "4"), "--bits 4 needs --lora_enable", "4-bit weights are frozen");
    }

    @Test
    void fp16AndBf16Contradict() {
        ArgsException e = fx.error("--fp16", "--bf16");
        assertEquals(2, e.problems().size(), e.getMessage());
        assertTrue(e.problems().stream().anyMatch(p -> p.contains("--fp16 and --bf16 contradict")), e.getMessage());
    }

    @Test
    void warmupRatioAndStepsContradict() {
        only(fx.error("--warmup_ratio", "0.03", "--warmup_steps", "100"),
                "--warmup_ratio 0.03 and --warmup_steps 100 are both set");
    }

    @Test
    void nothingToTrain() {
        only(fx.error("--max_steps", "0", "--num_train_epochs", "0"), "--max_steps 0 and --num_train_epochs 0.0");
        only(fx.error("--num_train_epochs", "-1"), "--max_steps -1 and --num_train_epochs -1.0");
        fx.parse("--max_steps", "10", "--num_train_epochs", "0"); // max_steps wins
    }

    @Test
    void saveStepsMustBePositiveWhenSavingBySteps() {
        only(fx.error("--save_steps", "0"), "--save_strategy steps needs --save_steps > 0, got 0");
        fx.parse("--save_steps", "0", "--save_strategy", "no");
        fx.parse("--save_steps", "-1", "--save_strategy", "epoch");
    }

    @Test
    void evaluationNeedsDataAndOneSourceOfIt() {
        only(fx.error("--eval_strategy", "steps"), "--eval_strategy steps needs evaluation data", "--eval_data_path", "--eval_ratio");
        Path eval = Fixture.write(tmp.resolve("eval.json"), "[]");
        only(fx.error("--eval_data_path", eval.toString(), "--eval_ratio", "0.1"), "--eval_data_path and --eval_ratio 0.1 are both set");
        fx.parse("--eval_strategy", "epoch", "--eval_data_path", eval.toString());
    }

    @Test
    void resumeLatestContradictsOverwrite() {
        fx.dir("out/checkpoint-1");
        only(fx.error("--resume_from_checkpoint", "latest", "--overwrite_output_dir"),
                "--resume_from_checkpoint latest", "--overwrite_output_dir");
    }

    // ---- requirements and files ----

    @Test
    void modelAndDataAreRequired() {
        ArgsException e = org.junit.jupiter.api.Assertions.assertThrows(ArgsException.class, () -> fx.raw("--bf16"));
        assertEquals(2, e.problems().size(), e.getMessage());
        assertTrue(e.problems().get(0).contains("--model_id") && e.problems().get(0).contains("--model_path"), e.getMessage());
        assertTrue(e.problems().get(1).contains("--data_path is required"), e.getMessage());
    }

    @Test
    void filesNamedMustExist() {
        only(fx.error("--data_path", tmp.resolve("nope.json").toString()), "--data_path", "nope.json does not exist");
        only(fx.error("--eval_data_path", tmp.resolve("nope.json").toString()), "--eval_data_path", "does not exist");
        only(fx.error("--model_path", fx.dir("empty").toString()), "--model_path", "has no config.json");
        only(fx.error("--resume_from_checkpoint", tmp.resolve("gone").toString()), "--resume_from_checkpoint", "is not a directory");
        only(fx.error("--resume_from_checkpoint", "latest"), "--resume_from_checkpoint latest: no checkpoint-N directory in --output_dir");
        only(fx.error("--config", tmp.resolve("none.json").toString()), "--config", "cannot be read");
    }

    // ---- all at once ----

    @Test
    void everyProblemIsReportedTogether() {
        ArgsException e = fx.error("--learnin_rate", "1", "--per_device_train_batch_size", "x", "--eval_ratio", "2",
                "--deepspeed", "z.json", "--optim", "lion_8bit", "--report_to", "wandb", "--lora_enable",
                "--warmup_ratio", "0.1", "--warmup_steps", "3", "--save_steps", "0", "--max_steps");
        List<String> p = e.problems();
        assertEquals(10, p.size(), e.getMessage());
        assertTrue(e.getMessage().startsWith("10 problems with the arguments:"), e.getMessage());
        for (String fragment : List.of("--learnin_rate", "--per_device_train_batch_size x", "--eval_ratio 2.0", "--deepspeed",
                "--optim lion_8bit", "--report_to wandb", "--lora_enable needs --freeze_llm", "--warmup_ratio 0.1",
                "--save_steps > 0", "--max_steps needs a value")) {
            assertTrue(p.stream().anyMatch(s -> s.contains(fragment)), fragment + " in " + e.getMessage());
        }
    }
}
