namespace Shepherd.Tests.Providers.Simulated;

using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Providers;
using Shepherd.Providers.Simulated;

public sealed class SimulatedProviderTests
{
    private static SimulatedProvider Create(SimulatedConfig simulated, TimeProvider? time = null) =>
        new(new ProviderConfig { Name = "sim", Type = ProviderTypes.Simulated, Simulated = simulated }, time ?? TimeProvider.System);

    private static UpstreamCall Call(string json) => new(SimulatedScriptTests.Parse(json), "sim-model", string.Empty);

    [Fact]
    public async Task CompleteAsync_AnswerIsAChatCompletionWithUsage()
    {
        var provider = Create(new SimulatedConfig { ResponseTokens = 10, PromptTokens = 42 });

        var outcome = await provider.CompleteAsync(Call("""{"model":"m","messages":[{"role":"user","content":"hi"}]}"""), CancellationToken.None);

        Assert.True(outcome.IsSuccess);
        using var completion = outcome.Value!;
        Assert.Equal(new Usage(42, 10), completion.Usage);
        using var json = JsonDocument.Parse(completion.Json);
        var root = json.RootElement;
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        Assert.Equal("sim-model", root.GetProperty("model").GetString());
        Assert.Equal("stop", root.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(52, root.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task CompleteAsync_SameRequestTwice_SameContent()
    {
        var provider = Create(new SimulatedConfig());
        var call = Call("""{"model":"m","messages":[{"role":"user","content":"repeat"}]}""");

        Assert.Equal(await ContentAsync(provider, call), await ContentAsync(provider, call));
    }

    [Fact]
    public async Task CompleteAsync_NChoices_EachIndexed()
    {
        var provider = Create(new SimulatedConfig { ResponseTokens = 4 });

        var outcome = await provider.CompleteAsync(Call("""{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"""), CancellationToken.None);

        using var completion = outcome.Value!;
        using var json = JsonDocument.Parse(completion.Json);
        var choices = json.RootElement.GetProperty("choices");
        Assert.Equal(2, choices.GetArrayLength());
        Assert.Equal([0, 1], choices.EnumerateArray().Select(c => c.GetProperty("index").GetInt32()));
        Assert.Equal(8, completion.Usage.CompletionTokens);
    }

    [Fact]
    public async Task CompleteAsync_ToolCall_MessageCarriesToolCalls()
    {
        var provider = Create(new SimulatedConfig());

        var outcome = await provider.CompleteAsync(Call("""
            {"model":"m","tool_choice":"required","tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}}],
             "messages":[{"role":"user","content":"hi"}]}
            """), CancellationToken.None);

        using var completion = outcome.Value!;
        using var json = JsonDocument.Parse(completion.Json);
        var choice = json.RootElement.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var call = choice.GetProperty("message").GetProperty("tool_calls")[0];
        Assert.Equal("lookup", call.GetProperty("function").GetProperty("name").GetString());
        using var arguments = JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!);
        Assert.Equal(JsonValueKind.String, arguments.RootElement.GetProperty("q").ValueKind);
    }

    [Fact]
    public async Task CompleteAsync_WithTiming_AnswersAfterTheWholeGenerationTime()
    {
        var time = new FakeTimeProvider();
        var provider = Create(new SimulatedConfig { TimeToFirstTokenMs = 200, TokensPerSecond = 10, ResponseTokens = 5 }, time);

        var pending = provider.CompleteAsync(Call("""{"model":"m","messages":[{"role":"user","content":"hi"}]}"""), CancellationToken.None).AsTask();

        // 200 ms to the first token, then 4 more tokens at 100 ms each.
        time.Advance(TimeSpan.FromMilliseconds(599));
        Assert.False(pending.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));
        var outcome = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        outcome.Value!.Dispose();
    }

    [Fact]
    public async Task StreamAsync_WithTiming_FirstTokenAfterTtftThenOnePerInterval()
    {
        var time = new FakeTimeProvider();
        var provider = Create(new SimulatedConfig { TimeToFirstTokenMs = 250, TokensPerSecond = 20, ResponseTokens = 3, PromptTokens = 9 }, time);

        var outcome = await provider.StreamAsync(Call("""{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"""), CancellationToken.None);
        await using var stream = outcome.Value!;

        // The role chunk is immediate.
        Assert.True(await stream.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(stream.Current.HasContent);

        // The first token waits for the time to first token.
        var next = stream.MoveNextAsync().AsTask();
        time.Advance(TimeSpan.FromMilliseconds(249));
        Assert.False(next.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(stream.Current.HasContent);
        var text = new StringBuilder(DeltaContent(stream.Current));

        // Each further token waits 1/20 s.
        for (var i = 0; i < 2; i++)
        {
            next = stream.MoveNextAsync().AsTask();
            time.Advance(TimeSpan.FromMilliseconds(49));
            Assert.False(next.IsCompleted);
            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(10)));
            text.Append(DeltaContent(stream.Current));
        }

        // Then the finish and the usage chunk, without further waiting.
        Assert.True(await stream.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        using (var finish = JsonDocument.Parse(stream.Current.Json))
        {
            Assert.Equal("stop", finish.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        }

        Assert.True(await stream.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(stream.Current.IsUsageOnly);
        Assert.Equal(new Usage(9, 3), stream.Current.Usage);
        Assert.False(await stream.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));

        var complete = await ContentAsync(Create(new SimulatedConfig { ResponseTokens = 3 }), Call("""{"model":"m","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(complete, text.ToString());
    }

    [Fact]
    public async Task StreamAsync_ToolCall_IdAndNameFirstThenArgumentFragments()
    {
        var provider = Create(new SimulatedConfig());
        var outcome = await provider.StreamAsync(Call("""
            {"model":"m","stream":true,"tool_choice":"required","tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"query":{"type":"string"},"page":{"type":"integer"}},"required":["query","page"]}}}],
             "messages":[{"role":"user","content":"hi"}]}
            """), CancellationToken.None);
        await using var stream = outcome.Value!;

        var arguments = new StringBuilder();
        var starts = 0;
        string? finish = null;
        while (await stream.MoveNextAsync())
        {
            using var chunk = JsonDocument.Parse(stream.Current.Json);
            var choices = chunk.RootElement.GetProperty("choices");
            if (choices.GetArrayLength() == 0)
            {
                continue;
            }

            var choice = choices[0];
            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            {
                finish = choice.GetProperty("finish_reason").GetString();
            }

            if (choice.GetProperty("delta").TryGetProperty("tool_calls", out var calls))
            {
                var call = calls[0];
                Assert.Equal(0, call.GetProperty("index").GetInt32());
                if (call.TryGetProperty("id", out _))
                {
                    starts++;
                    Assert.Equal("lookup", call.GetProperty("function").GetProperty("name").GetString());
                }

                arguments.Append(call.GetProperty("function").GetProperty("arguments").GetString());
            }
        }

        Assert.Equal(1, starts);
        Assert.Equal("tool_calls", finish);
        using var parsed = JsonDocument.Parse(arguments.ToString());
        Assert.Equal(JsonValueKind.Number, parsed.RootElement.GetProperty("page").ValueKind);
    }

    [Fact]
    public async Task StreamAsync_Cancelled_StopsWaiting()
    {
        var time = new FakeTimeProvider();
        var provider = Create(new SimulatedConfig { TimeToFirstTokenMs = 1000 }, time);
        using var cancel = new CancellationTokenSource();
        var outcome = await provider.StreamAsync(Call("""{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"""), cancel.Token);
        await using var stream = outcome.Value!;
        Assert.True(await stream.MoveNextAsync());

        var next = stream.MoveNextAsync().AsTask();
        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static async Task<string> ContentAsync(SimulatedProvider provider, UpstreamCall call)
    {
        var outcome = await provider.CompleteAsync(call, CancellationToken.None);
        using var completion = outcome.Value!;
        using var json = JsonDocument.Parse(completion.Json);
        return json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    }

    private static string DeltaContent(StreamEvent chunk)
    {
        using var json = JsonDocument.Parse(chunk.Json);
        return json.RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()!;
    }
}
