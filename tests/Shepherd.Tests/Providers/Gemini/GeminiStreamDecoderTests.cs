namespace Shepherd.Tests.Providers.Gemini;

using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers.Gemini;
using Shepherd.Providers.Shared;
using static Shepherd.Tests.Providers.Gemini.GeminiTranscripts;

/// <summary>Recorded Gemini SSE streams → OpenAI chunks (PROTOCOLS.md §4.6), with LF and CRLF framing.</summary>
public sealed class GeminiStreamDecoderTests
{
    private sealed record Chunk(JsonElement Json, bool HasContent, Usage? Usage, bool UsageOnly);

    private sealed record Decoded(List<Chunk> Chunks, UpstreamFailure? Failure)
    {
        public IEnumerable<JsonElement> Deltas => Chunks.Where(c => !c.UsageOnly).Select(c => c.Json.GetProperty("choices")[0]);

        public string Content(int choice = 0) => string.Concat(Deltas
            .Where(d => d.GetProperty("index").GetInt32() == choice && d.GetProperty("delta").TryGetProperty("content", out _))
            .Select(d => d.GetProperty("delta").GetProperty("content").GetString()));

        public List<(int Choice, string Reason)> Finishes => Deltas
            .Where(d => d.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            .Select(d => (d.GetProperty("index").GetInt32(), d.GetProperty("finish_reason").GetString()!)).ToList();
    }

    /// <summary>Runs an SSE body through the shared SSE reader and the decoder, as the provider's stream does.</summary>
    private static async Task<Decoded> DecodeAsync(string sse, string lineEnding = "\n")
    {
        using var body = new MemoryStream(Encoding.UTF8.GetBytes(sse.ReplaceLineEndings(lineEnding)));
        using var reader = new SseReader(body);
        var decoder = new GeminiStreamDecoder("gem", "fallback-model", 1760000000, "k");
        var chunks = new List<Chunk>();
        UpstreamFailure? failure = null;
        while (failure is null)
        {
            var got = await reader.ReadEventAsync(CancellationToken.None);
            failure = got ? decoder.Feed(reader.Data.Span) : decoder.Complete();
            while (decoder.TryNext(out var e))
            {
                // Each chunk's memory is only valid until the next one: copy it out, as the server writes it out.
                chunks.Add(new Chunk(JsonDocument.Parse(e.Json.ToArray()).RootElement, e.HasContent, e.Usage, e.IsUsageOnly));
            }

            if (!got)
            {
                break;
            }
        }

        return new Decoded(chunks, failure);
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public async Task Decode_TextStream_RoleFirstDeltasHeldFinishThenUsage(string lineEnding)
    {
        var decoded = await DecodeAsync(Read("stream-text.sse"), lineEnding);

        Assert.Null(decoded.Failure);
        var first = decoded.Chunks[0];
        Assert.False(first.HasContent);
        Assert.Equal("assistant", first.Json.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal("chatcmpl-r1", first.Json.GetProperty("id").GetString());
        Assert.Equal("chat.completion.chunk", first.Json.GetProperty("object").GetString());
        Assert.Equal("gemini-2.5-flash", first.Json.GetProperty("model").GetString());
        Assert.Equal("It is 18C and cloudy.", decoded.Content());
        Assert.Equal([(0, "stop")], decoded.Finishes);

        // The finish is held until the stream closed, then comes the usage chunk, last.
        Assert.Equal("stop", decoded.Chunks[^2].Json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var usage = decoded.Chunks[^1];
        Assert.True(usage.UsageOnly);
        Assert.False(usage.HasContent);
        Assert.Equal(0, usage.Json.GetProperty("choices").GetArrayLength());
        Assert.Equal(new Usage(57, 9, CachedTokens: 20), usage.Usage);
        Assert.Equal(66, usage.Json.GetProperty("usage").GetProperty("total_tokens").GetInt32());
        Assert.All(decoded.Chunks.Skip(1).SkipLast(1), c => Assert.True(c.HasContent));
        Assert.All(decoded.Chunks.SkipLast(1), c => Assert.Null(c.Usage));
    }

    [Fact]
    public async Task Decode_FunctionCalls_CompleteToolCallDeltasIndexedAndFinishToolCalls()
    {
        var decoded = await DecodeAsync(Read("stream-function-call.sse"), "\r\n");

        Assert.Null(decoded.Failure);
        Assert.Equal("Let me check.", decoded.Content());
        var calls = decoded.Deltas.Where(d => d.GetProperty("delta").TryGetProperty("tool_calls", out _))
            .Select(d => d.GetProperty("delta").GetProperty("tool_calls").EnumerateArray().Single()).ToList();
        Assert.Equal(2, calls.Count);
        Assert.Equal([0, 1], calls.Select(c => c.GetProperty("index").GetInt32()).ToArray());
        Assert.Equal("get_weather", calls[0].GetProperty("function").GetProperty("name").GetString());
        AssertJsonEqual("""{"city":"Paris"}""", calls[0].GetProperty("function").GetProperty("arguments").GetString()!);
        Assert.Equal("{}", calls[1].GetProperty("function").GetProperty("arguments").GetString());
        Assert.Equal("function", calls[1].GetProperty("type").GetString());
        Assert.Equal("+/+/c2lnLUEtZmlyc3QtY2FsbD4/", GeminiToolCallId.Signature(calls[0].GetProperty("id").GetString()));
        Assert.Null(GeminiToolCallId.Signature(calls[1].GetProperty("id").GetString()));

        // STOP with function calls is tool_calls (§5.8).
        Assert.Equal([(0, "tool_calls")], decoded.Finishes);
        Assert.Equal(new Usage(40, 45, ReasoningTokens: 30), decoded.Chunks[^1].Usage);
    }

    [Fact]
    public async Task Decode_ThoughtParts_ReasoningContentAndEmptySignedTextSkipped()
    {
        var decoded = await DecodeAsync(Read("stream-thoughts.sse"));

        Assert.Null(decoded.Failure);
        var reasoning = decoded.Deltas.Where(d => d.GetProperty("delta").TryGetProperty("reasoning_content", out _)).ToList();
        Assert.Equal("**Planning** I should greet.", reasoning.Single().GetProperty("delta").GetProperty("reasoning_content").GetString());
        Assert.Equal("Hi!", decoded.Content());
        Assert.DoesNotContain(decoded.Deltas, d => d.GetProperty("delta").TryGetProperty("content", out var c) && c.GetString() == string.Empty && !d.GetProperty("delta").TryGetProperty("role", out _));
        Assert.Equal([(0, "length")], decoded.Finishes);
        Assert.Equal(new Usage(8, 27, ReasoningTokens: 25), decoded.Chunks[^1].Usage);
    }

    [Fact]
    public async Task Decode_UsageOnSeveralChunks_LastOneWins()
    {
        var decoded = await DecodeAsync(Read("stream-two-candidates.sse"));
        Assert.Equal(new Usage(3, 4), decoded.Chunks[^1].Usage);

        var text = await DecodeAsync(Read("stream-text.sse"));
        Assert.Equal(57, text.Chunks[^1].Usage!.Value.PromptTokens);
        Assert.Equal(9, text.Chunks[^1].Usage!.Value.CompletionTokens);
    }

    [Fact]
    public async Task Decode_TwoCandidates_OneRoleAndFinishPerChoice()
    {
        var decoded = await DecodeAsync(Read("stream-two-candidates.sse"));

        Assert.Null(decoded.Failure);
        Assert.Equal("Aa", decoded.Content(0));
        Assert.Equal("Bb", decoded.Content(1));
        Assert.Equal([(0, "stop"), (1, "length")], decoded.Finishes);
        var roles = decoded.Deltas.Where(d => d.GetProperty("delta").TryGetProperty("role", out _)).Select(d => d.GetProperty("index").GetInt32());
        Assert.Equal([0, 1], roles.ToArray());
    }

    [Fact]
    public async Task Decode_ErrorEventMidStream_ContentThenClassifiedFailure()
    {
        var decoded = await DecodeAsync(Read("stream-mid-error.sse"), "\r\n");

        Assert.Equal("Partial", decoded.Content());
        Assert.Empty(decoded.Finishes);
        Assert.NotNull(decoded.Failure);
        Assert.Equal(FailureClass.Transient, decoded.Failure.Class);
        Assert.Equal(503, decoded.Failure.UpstreamStatus);
        Assert.Equal("The model is overloaded. Please try again later.", decoded.Failure.Message);
    }

    [Fact]
    public async Task Decode_ArrayWrappedQuotaErrorEvent_RateLimitedWithRetry()
    {
        var decoded = await DecodeAsync("data: " + Read("error-resource-exhausted.json").ReplaceLineEndings(" ") + "\n\n");
        Assert.Equal(FailureClass.RateLimited, decoded.Failure?.Class);
        Assert.Equal(TimeSpan.FromSeconds(17), decoded.Failure?.RetryAfter);
    }

    [Fact]
    public async Task Decode_ClosedWithoutFinishReason_TransientFailureNoFinishNoUsage()
    {
        var decoded = await DecodeAsync(Read("stream-no-finish.sse"));

        Assert.Equal("Cut short", decoded.Content());
        Assert.Empty(decoded.Finishes);
        Assert.DoesNotContain(decoded.Chunks, c => c.UsageOnly);
        Assert.Equal(FailureClass.Transient, decoded.Failure?.Class);
    }

    [Fact]
    public async Task Decode_EmptyStream_TransientFailure()
    {
        var decoded = await DecodeAsync(string.Empty);
        Assert.Empty(decoded.Chunks);
        Assert.Equal(FailureClass.Transient, decoded.Failure?.Class);
    }

    [Fact]
    public async Task Decode_BlockedPrompt_EmptyContentFilterAnswer()
    {
        var decoded = await DecodeAsync(Read("stream-blocked.sse"));

        Assert.Null(decoded.Failure);
        Assert.Equal(string.Empty, decoded.Content());
        Assert.Equal([(0, "content_filter")], decoded.Finishes);
        Assert.Equal(new Usage(12, 0), decoded.Chunks[^1].Usage);
    }

    [Fact]
    public async Task Decode_MalformedEvent_TransientFailure()
    {
        var decoded = await DecodeAsync("data: {\"candidates\": [\n\n");
        Assert.Equal(FailureClass.Transient, decoded.Failure?.Class);
    }
}
