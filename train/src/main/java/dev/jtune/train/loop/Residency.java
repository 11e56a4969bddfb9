package dev.jtune.train.loop;

import dev.jtune.engine.ActivationStore;
import dev.jtune.engine.Device;
import dev.jtune.engine.MemoryCategory;
import dev.jtune.engine.Placement;
import dev.jtune.engine.Scope;
import dev.jtune.engine.Tensor;
import dev.jtune.engine.dist.Collectives;
import dev.jtune.engine.dist.ShardedWeights;
import dev.jtune.engine.nn.ComputeCopies;
import dev.jtune.engine.offload.HostActivationStore;
import dev.jtune.engine.optim.AdamW;
import dev.jtune.engine.optim.AdamW8bit;
import dev.jtune.engine.optim.HostOffloadAdamW;
import dev.jtune.engine.optim.Optimizer;
import dev.jtune.engine.optim.ParamGroup;
import dev.jtune.engine.optim.ShardedAdamW;

import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * Where a run's weights, optimizer state and checkpointed activations live, decided in one place from its config and
 * data-parallel world: weight offload, the optimizer (its state's precision, place and step timing; ZeRO sharding in
 * a world), ZeRO stage 3's layer shards, in the order they must be made ({@link #place}); the activation store; and
 * how a save or a restore sees sharded weights whole ({@link #withWholeWeights}). A run ({@link Trainer}) and the
 * planner's measured step ({@link Trainer#measureStep}) both come through here.
 */
final class Residency {
    private Residency() {
    }

    /**
     * The run's optimizer over the trained parameters, with the weights placed around it, in the current scope (the
     * model's): the layers offloaded first when asked (the optimizer then holds their host values); the optimizer,
     * counted as OPTIMIZER; then, under ZeRO stage 3, the layers sharded (the optimizer's parts of the trained ones
     * filled from the whole values first).
     */
    static Optimizer place(TrainerConfig config, Trainable trainable, Collectives world) {
        placeWeights(config, trainable, world);
        Optimizer optimizer;
        try (Scope.Entered c = Scope.countAs(MemoryCategory.OPTIMIZER)) {
            optimizer = newOptimizer(config, trainable.namedParameters(), trainable.paramGroups(config), world, unitsOf(config, trainable, world));
        }
        shardWeights(config, trainable, world, optimizer);
        return optimizer;
    }

    /**
     * Where the layers' weights live, before the optimizer takes the parameters (it then holds their values), in the
     * scope current now, the model's: weight offload ({@link TrainerConfig.WeightPlacement#HOST}) moves them to pinned
     * host memory. A model already placed stays as it is.
     */
    private static void placeWeights(TrainerConfig config, Trainable trainable, Collectives world) {
        if (config.weightPlacement() == TrainerConfig.WeightPlacement.HOST && !shardsWeights(config, world)) {
            trainable.model().offloadLayerWeights();
        }
    }

    /** Whether ZeRO stage 3 shards the layers' weights over the ranks ({@link #shardWeights}; beside weight offload too). */
    private static boolean shardsWeights(TrainerConfig config, Collectives world) {
        return world != null && config.optimizerSharding() == TrainerConfig.OptimizerSharding.PARAMETERS;
    }

    /**
     * ZeRO stage 3 in a world ({@link TrainerConfig.OptimizerSharding#PARAMETERS}), once the optimizer holds its parts:
     * this rank keeps its part of every layer's frozen weights, and the optimizer its part of a full fine-tune's trained
     * layer weights ({@link ShardedAdamW#trainedRuns}); each layer is gathered as computation reaches it, and saves
     * and restores lend the weights whole ({@link #withWholeWeights}). With weight offload ({@code --offload_param cpu},
     * ZeRO-3's offload_param) the frozen parts live in pinned host memory (a model loaded into host memory gives its
     * layers over). A model already sharded stays as it is.
     */
    private static void shardWeights(TrainerConfig config, Trainable trainable, Collectives world, Optimizer optimizer) {
        if (shardsWeights(config, world) && !(trainable.model().layerWeights().orElse(null) instanceof ShardedWeights)) {
            Placement parts = config.weightPlacement() == TrainerConfig.WeightPlacement.HOST ? Placement.HOST_MAPPED : Placement.DEVICE;
            trainable.model().shardLayerWeights(world, optimizer instanceof ShardedAdamW s ? s.trainedRuns() : List.of(), parts);
        }
    }

    /**
     * The layer (unit) of each trained layer weight, by identity, where ZeRO stage 3 shards trained weights: a full
     * fine-tune's in a world (LoRA's adapters are small and stay whole, as do the embedding and the final norm); else
     * empty.
     */
    private static Map<Tensor, Integer> unitsOf(TrainerConfig config, Trainable trainable, Collectives world) {
        Map<Tensor, Integer> out = new java.util.IdentityHashMap<>();
        if (!shardsWeights(config, world) || trainable.isLora() || trainable.model().layerWeights().orElse(null) instanceof ShardedWeights) {
            return out;
        }
        List<? extends dev.jtune.engine.nn.Module> layers = trainable.model().layers();
        for (int i = 0; i < layers.size(); i++) {
            for (dev.jtune.engine.nn.Parameter p : layers.get(i).namedParameters().values()) {
                if (p.isSet() && p.isTrained()) {
                    out.put(p.tensor(), i);
                }
            }
        }
        return out;
    }

    /**
     * Runs {@code action} with the model's weights whole, for a save or a restore: under ZeRO stage 3 with trained
     * weights sharded, lent whole in host memory by every rank ({@link ShardedWeights#withWholeValues}, a collective:
     * every rank calls it, whether or not it writes); else as they are.
     */
    static void withWholeWeights(Trainable trainable, Runnable action) {
        if (trainable.model().layerWeights().orElse(null) instanceof ShardedWeights s && !s.isClosed() && s.holdsTrainedParameters()) {
            s.withWholeValues(action);
        } else {
            action.run();
        }
    }

    /**
     * The adapters' compute-dtype copies (bf16 A and B on a bf16 base), made in one launch at each step's start instead
     * of one cast launch a matrix ({@link ComputeCopies}), in the scope current now (the run's), counted as ADAPTERS;
     * null where no adapter weight is cast (full fine-tuning, an fp32 base) or with {@code -Djtune.computeCopies=false}.
     */
    static ComputeCopies computeCopies(Trainable trainable) {
        SequencedMap<String, Tensor> cast = trainable.castAdapterWeights();
        if (cast.isEmpty() || !Boolean.parseBoolean(System.getProperty("jtune.computeCopies", "true"))) {
            return null;
        }
        try (Scope.Entered c = Scope.countAs(MemoryCategory.ADAPTERS)) {
            return ComputeCopies.of(cast, trainable.adapterComputeDtype());
        }
    }

    /** Where checkpointed inputs wait for backward: the device, or pinned host memory (a store that lives with the run). */
    static ActivationStore activationStore(TrainerConfig config, Device device) {
        return config.activationPlacement() == TrainerConfig.ActivationPlacement.HOST ? new HostActivationStore(device) : ActivationStore.DEVICE;
    }

    /**
     * The one place the optimizer is chosen, over the trained parameters by name (its checkpointed state is named after
     * them), from the config's state precision, placement and step timing: AdamW or bitsandbytes' 8-bit AdamW with
     * flat state on the device or host-mapped (paged), or the host-offloaded AdamW with either state; each parameter in its
     * group ({@link Trainable#paramGroups}); in a data-parallel world with a {@link TrainerConfig.OptimizerSharding} (ZeRO
     * stage 1 or 2), AdamW with its state (and in stage 2 its gradients) sharded over the ranks. Called in the scope that holds the parameters,
     * counting as OPTIMIZER. {@code unitOf}: under ZeRO stage 3, the layer of each trained weight it shards
     * ({@link #unitsOf}), or empty.
     */
    private static Optimizer newOptimizer(TrainerConfig config, SequencedMap<String, Tensor> params, ParamGroup.Assignment groups,
                                          Collectives world, Map<Tensor, Integer> unitOf) {
        AdamW.Config adam = new AdamW.Config(config.learningRate(), config.beta1(), config.beta2(), config.epsilon(), config.weightDecay());
        if (world != null && config.optimizerSharding().shardsState()) {
            // the config allows it with fp32 or 8-bit moments, on the host fp32 ones (in step or delayed)
            ShardedAdamW.Builder b = ShardedAdamW.builder(params, adam, world).groups(groups).state(switch (config.optimizerStatePlacement()) {
                case DEVICE -> ShardedAdamW.State.DEVICE;
                case PAGED_HOST -> ShardedAdamW.State.PAGED;
                case HOST -> ShardedAdamW.State.HOST;
            }).moments(switch (config.optimizerStatePrecision()) {
                case FP32 -> ShardedAdamW.Moments.FP32;
                case BLOCKWISE_8BIT -> ShardedAdamW.Moments.BLOCKWISE_8BIT;
            }).schedule(config.optimizerStepTiming() == TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP
                    ? HostOffloadAdamW.Schedule.DELAYED : HostOffloadAdamW.Schedule.IN_STEP);
            if (config.optimizerSharding().shardsGradients()) {
                // the model's parameters in their order of use fix the buckets' reduction order, as for whole gradients
                b.shardGradients(config.ddpBucketBytes(), List.copyOf(params.values())).shardParameters(unitOf);
            }
            return b.build();
        }
        TrainerConfig.OptimizerStatePrecision precision = config.optimizerStatePrecision();
        return switch (config.optimizerStatePlacement()) {
            case DEVICE -> switch (precision) {
                case FP32 -> new AdamW(params, adam, Placement.DEVICE, groups);
                case BLOCKWISE_8BIT -> new AdamW8bit(params, adam, Placement.DEVICE, groups);
            };
            case PAGED_HOST -> switch (precision) {
                case FP32 -> new AdamW(params, adam, Placement.HOST_MAPPED, groups);
                case BLOCKWISE_8BIT -> new AdamW8bit(params, adam, Placement.HOST_MAPPED, groups);
            };
            // the delayed step keeps the gradients in a device buffer, since its update reads one step's gradients while
            // backward computes the next step's; in step they may stream to the host during backward (no device buffer)
            case HOST -> hostOffloaded(config, params, adam, groups, switch (precision) {
                case FP32 -> HostOffloadAdamW.Moments.FP32;
                case BLOCKWISE_8BIT -> HostOffloadAdamW.Moments.BLOCKWISE_8BIT;
            });
        };
    }

    /** The host-offloaded AdamW with fp32 or 8-bit moments, delayed or in step (see the comment above). */
    private static HostOffloadAdamW hostOffloaded(TrainerConfig config, SequencedMap<String, Tensor> params, AdamW.Config adam,
                                                  ParamGroup.Assignment groups, HostOffloadAdamW.Moments moments) {
        HostOffloadAdamW.Builder b = HostOffloadAdamW.builder(params, adam).moments(moments).groups(groups);
        return config.optimizerStepTiming() == TrainerConfig.OptimizerStepTiming.DELAYED_ONE_STEP
                ? b.schedule(HostOffloadAdamW.Schedule.DELAYED).build()
                : b.gradients(streamGradients() ? HostOffloadAdamW.Gradients.STREAMED : HostOffloadAdamW.Gradients.DEVICE_BUFFER).build();
    }

    private static boolean streamGradients() {
        return Boolean.parseBoolean(System.getProperty(Trainer.STREAM_GRADIENTS_PROPERTY, "true"));
    }
}
