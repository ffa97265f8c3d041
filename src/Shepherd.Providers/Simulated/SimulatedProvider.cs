namespace Shepherd.Providers.Simulated;

using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Providers.Shared;

/// <summary>
/// A real provider with no upstream: deterministic text, configurable time to first token and speed, honours
/// max tokens and stop sequences, calls tools when asked, reports usage. Used by the demo configuration, load
/// tests and offline development; never used unless configured.
/// </summary>
public sealed class SimulatedProvider : IChatProvider
{
    private readonly ProviderConfig _config;
    private readonly SimulatedConfig _simulated;
    private readonly TimeProvider _time;

    public SimulatedProvider(ProviderConfig config, TimeProvider time)
    {
        _config = config;
        _simulated = config.Simulated ?? new SimulatedConfig();
        _time = time;
    }

    public string Name => _config.Name;

    public string Type => ProviderTypes.Simulated;

    public ProviderCapabilities Capabilities { get; } = new(MultipleChoices: true, Images: true, Tools: true);

    public async ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        var (plans, promptTokens) = SimulatedScript.Build(call.Request, call.UpstreamModel, _simulated);
        var completionTokens = plans.Sum(p => p.CompletionTokens);

        // A non-streamed answer arrives when the whole answer would have been generated.
        var delay = TimeSpan.FromMilliseconds(_simulated.TimeToFirstTokenMs) + Generation(plans.Max(p => p.CompletionTokens));
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }

        var choices = plans.Select((plan, i) => ToChoice(plan, i)).ToArray();
        var usage = new Usage(promptTokens, completionTokens);
        var json = OpenAIOutput.Completion(NewId(), _time.GetUtcNow().ToUnixTimeSeconds(), call.UpstreamModel, choices, usage, "fp_shepherd_sim");
        return UpstreamOutcome<ChatCompletion>.Success(new ChatCompletion(json, usage));
    }

    public ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken)
    {
        var (plans, promptTokens) = SimulatedScript.Build(call.Request, call.UpstreamModel, _simulated);
        var writer = new OpenAIChunkWriter(NewId(), _time.GetUtcNow().ToUnixTimeSeconds(), call.UpstreamModel);
        var stream = new SimulatedChatStream(Events(plans, promptTokens, writer, cancellationToken));
        return ValueTask.FromResult(UpstreamOutcome<ChatStream>.Success(stream));
    }

    private async IAsyncEnumerable<StreamEvent> Events(
        IReadOnlyList<SimulatedScript.Plan> plans,
        int promptTokens,
        OpenAIChunkWriter writer,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var c = 0; c < plans.Count; c++)
        {
            yield return StreamEvent.Chunk(writer.Role(c), hasContent: false);
        }

        if (_simulated.TimeToFirstTokenMs > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(_simulated.TimeToFirstTokenMs), _time, cancellationToken).ConfigureAwait(false);
        }

        var perToken = _simulated.TokensPerSecond > 0 ? TimeSpan.FromSeconds(1 / _simulated.TokensPerSecond) : TimeSpan.Zero;
        for (var c = 0; c < plans.Count; c++)
        {
            var plan = plans[c];
            for (var t = 0; t < plan.Tokens.Count; t++)
            {
                if (t > 0 && perToken > TimeSpan.Zero)
                {
                    await Task.Delay(perToken, _time, cancellationToken).ConfigureAwait(false);
                }

                yield return StreamEvent.Chunk(writer.Content(plan.Tokens[t], c), hasContent: true);
            }

            for (var i = 0; i < plan.ToolCalls.Count; i++)
            {
                var call = plan.ToolCalls[i];
                yield return StreamEvent.Chunk(writer.ToolCallStart(i, call.Id, call.Name, string.Empty, c), hasContent: true);

                // Arguments arrive in fragments, as real providers send them.
                for (var offset = 0; offset < call.Arguments.Length; offset += 16)
                {
                    var fragment = call.Arguments.Substring(offset, Math.Min(16, call.Arguments.Length - offset));
                    yield return StreamEvent.Chunk(writer.ToolCallArguments(i, fragment, c), hasContent: true);
                }
            }

            yield return StreamEvent.Chunk(writer.Finish(plan.FinishReason, c), hasContent: true);
        }

        var usage = new Usage(promptTokens, plans.Sum(p => p.CompletionTokens));
        yield return StreamEvent.Chunk(writer.UsageChunk(usage), hasContent: false, usage, usageOnly: true);
    }

    private TimeSpan Generation(int tokens) =>
        _simulated.TokensPerSecond > 0 ? TimeSpan.FromSeconds(Math.Max(0, tokens - 1) / _simulated.TokensPerSecond) : TimeSpan.Zero;

    private static ChoiceOutput ToChoice(SimulatedScript.Plan plan, int index)
    {
        var choice = new ChoiceOutput { Index = index, FinishReason = plan.FinishReason };
        if (plan.ToolCalls.Count > 0)
        {
            choice.ToolCalls.AddRange(plan.ToolCalls);
        }
        else
        {
            choice.Content = string.Concat(plan.Tokens);
        }

        return choice;
    }

    private static string NewId() => $"chatcmpl-sim{Guid.NewGuid():N}"[..32];
}

/// <summary>Adapts an async iterator to <see cref="ChatStream"/>.</summary>
internal sealed class SimulatedChatStream(IAsyncEnumerable<StreamEvent> events) : ChatStream
{
    private readonly IAsyncEnumerator<StreamEvent> _events = events.GetAsyncEnumerator();

    public override StreamEvent Current => _events.Current;

    public override ValueTask<bool> MoveNextAsync() => _events.MoveNextAsync();

    public override ValueTask DisposeAsync() => _events.DisposeAsync();
}
