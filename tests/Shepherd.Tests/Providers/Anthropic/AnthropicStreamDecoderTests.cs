namespace Shepherd.Tests.Providers.Anthropic;

using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers.Anthropic;
using Shepherd.Providers.Shared;
using static AnthropicTranscripts;

/// <summary>Recorded Anthropic SSE streams → OpenAI chunks, through the decoder and the stream that reads them.</summary>
public sealed class AnthropicStreamDecoderTests
{
    /// <summary>One relayed event, copied (chunk memory is only valid until the next read).</summary>
    private sealed record Decoded(StreamEventKind Kind, string Json, Usage? Usage, bool HasContent, bool UsageOnly, UpstreamFailure? Failure, bool Buffered = false)
    {
        public JsonElement Root => JsonDocument.Parse(Json).RootElement;

        public JsonElement Delta => Root.GetProperty("choices")[0].GetProperty("delta");

        public string? FinishReason => Root.GetProperty("choices")[0].GetProperty("finish_reason").GetString();
    }

    private static async Task<List<Decoded>> DecodeAsync(string transcript, string? jsonToolName = null)
    {
        var decoder = new AnthropicStreamDecoder("claude", "sk-ant-test", 1760000000, "fallback-model", jsonToolName);
        var body = new MemoryStream(Bytes(transcript));
        var cancel = new UpstreamCancellation(CancellationToken.None, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeProvider.System);
        await using var stream = new AnthropicChatStream("claude", new HttpResponseMessage(), body, cancel, new PooledBuffer(), decoder);
        var events = new List<Decoded>();
        while (await stream.MoveNextAsync())
        {
            var e = stream.Current;
            events.Add(new Decoded(e.Kind, Encoding.UTF8.GetString(e.Json.Span), e.Usage, e.HasContent, e.IsUsageOnly, e.Failure, stream.HasBufferedEvent));
        }

        return events;
    }

    private static string Content(IEnumerable<Decoded> events) =>
        string.Concat(events.Where(e => e.Kind == StreamEventKind.Chunk && !e.UsageOnly && e.Delta.TryGetProperty("content", out _))
            .Select(e => e.Delta.GetProperty("content").GetString()));

    [Fact]
    public async Task Decode_TextStream_RoleThenContentThenFinishThenUsage()
    {
        var events = await DecodeAsync("stream_text.sse");

        Assert.All(events, e => Assert.Equal(StreamEventKind.Chunk, e.Kind));
        var role = events[0];
        Assert.Equal("assistant", role.Delta.GetProperty("role").GetString());
        Assert.False(role.HasContent);
        Assert.Equal("msg_01StreamText", role.Root.GetProperty("id").GetString());
        Assert.Equal("claude-sonnet-4-5-20250929", role.Root.GetProperty("model").GetString());
        Assert.Equal("chat.completion.chunk", role.Root.GetProperty("object").GetString());

        // The empty text_delta, ping, block start/stop and message_delta make no chunks.
        Assert.Equal(5, events.Count);
        Assert.Equal("Hello, \"world\"\né!", Content(events));
        Assert.True(events[1].HasContent);

        var finish = events[^2];
        Assert.Equal("stop", finish.FinishReason);
        Assert.True(finish.HasContent);

        var usage = events[^1];
        Assert.True(usage.UsageOnly);
        Assert.False(usage.HasContent);
        Assert.Equal(0, usage.Root.GetProperty("choices").GetArrayLength());
        Assert.Equal(new Usage(25, 12), usage.Usage);
        Assert.Equal(37, usage.Root.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task HasBufferedEvent_OnlyBetweenFinishAndUsage()
    {
        // The whole transcript sits in the reader's buffer, yet a buffered ping or block stop yields no chunk:
        // announcing it would hold back the flush of the text before it.
        var events = await DecodeAsync("stream_parallel_tools.sse");
        Assert.True(events[^2].Buffered);
        Assert.All(events.Where(e => e != events[^2]), e => Assert.False(e.Buffered));
    }

    [Fact]
    public async Task Decode_CrlfAndComments_Handled()
    {
        var events = await DecodeAsync("stream_crlf.sse");
        Assert.Equal("Hi", Content(events));
        Assert.Equal("stop", events[^2].FinishReason);
        Assert.Equal(new Usage(5, 2), events[^1].Usage);
    }

    [Fact]
    public async Task Decode_ParallelToolCalls_IndicesFromZeroAndFragmentsInOrder()
    {
        var events = await DecodeAsync("stream_parallel_tools.sse");

        var calls = events.Where(e => !e.UsageOnly && e.Delta.TryGetProperty("tool_calls", out _))
            .Select(e => e.Delta.GetProperty("tool_calls")[0]).ToList();

        // Start of each call carries id, type, name and empty arguments; the empty partial_json is skipped.
        Assert.Equal(6, calls.Count);
        Assert.Equal(0, calls[0].GetProperty("index").GetInt32());
        Assert.Equal("toolu_01Paris", calls[0].GetProperty("id").GetString());
        Assert.Equal("function", calls[0].GetProperty("type").GetString());
        Assert.Equal("get_weather", calls[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("", calls[0].GetProperty("function").GetProperty("arguments").GetString());
        Assert.Equal(1, calls[3].GetProperty("index").GetInt32());
        Assert.Equal("toolu_01Rome", calls[3].GetProperty("id").GetString());
        Assert.Equal("get_time", calls[3].GetProperty("function").GetProperty("name").GetString());

        string Arguments(int index) => string.Concat(calls.Where(c => c.GetProperty("index").GetInt32() == index)
            .Select(c => c.GetProperty("function").GetProperty("arguments").GetString()));
        Assert.Equal("""{"city": "Paris"}""", Arguments(0));
        Assert.Equal("""{"tz": "Europe/Rome"}""", Arguments(1));
        Assert.All(calls.Where(c => !c.TryGetProperty("id", out _)), c => Assert.False(c.GetProperty("function").TryGetProperty("name", out _)));

        Assert.Equal("Checking both cities.", Content(events));
        Assert.Equal("tool_calls", events[^2].FinishReason);
        Assert.Equal(new Usage(472, 89), events[^1].Usage);
    }

    [Fact]
    public async Task Decode_Thinking_BecomesReasoningContentAndSignatureIsDropped()
    {
        var events = await DecodeAsync("stream_thinking.sse");

        var reasoning = string.Concat(events.Where(e => !e.UsageOnly && e.Delta.TryGetProperty("reasoning_content", out _))
            .Select(e => e.Delta.GetProperty("reasoning_content").GetString()));
        Assert.Equal("Let me work out 27 * 453. 27 * 453 = 12231.", reasoning);
        Assert.All(events.Where(e => !e.UsageOnly && e.Delta.TryGetProperty("reasoning_content", out _)), e => Assert.True(e.HasContent));
        Assert.Equal("27 * 453 = 12,231", Content(events));
        Assert.DoesNotContain(events, e => e.Json.Contains("signature", StringComparison.Ordinal));
        Assert.Equal(new Usage(30, 140), events[^1].Usage);
    }

    [Fact]
    public async Task Decode_CacheUsage_PromptIncludesCacheAndLastMessageDeltaWins()
    {
        var events = await DecodeAsync("stream_cache_usage.sse");

        var usage = events[^1];
        Assert.True(usage.UsageOnly);
        Assert.Equal(new Usage(14 + 2048 + 300, 7, CachedTokens: 2048, CacheWriteTokens: 300), usage.Usage);
        var json = usage.Root.GetProperty("usage");
        Assert.Equal(2362, json.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(2048, json.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(2369, json.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Decode_ErrorEventMidStream_RelaysWhatCameThenAClassifiedError()
    {
        var events = await DecodeAsync("stream_error.sse");

        Assert.Equal("Partial answer", Content(events));
        var error = events[^1];
        Assert.Equal(StreamEventKind.Error, error.Kind);
        Assert.Equal(FailureClass.RateLimited, error.Failure!.Class);
        Assert.Equal("Overloaded", error.Failure.Message);
        Assert.DoesNotContain(events, e => e.UsageOnly);
    }

    [Fact]
    public async Task Decode_ConnectionClosedBeforeMessageStop_EndsWithTransientError()
    {
        var events = await DecodeAsync("stream_truncated.sse");

        Assert.Equal("The answer is 4", Content(events));
        var error = events[^1];
        Assert.Equal(StreamEventKind.Error, error.Kind);
        Assert.Equal(FailureClass.Transient, error.Failure!.Class);
        Assert.DoesNotContain(events, e => e.Kind == StreamEventKind.Chunk && !e.UsageOnly && e.FinishReason is not null);
    }

    [Fact]
    public async Task Decode_JsonSchemaAnswerTool_FragmentsBecomeContentAndFinishIsStop()
    {
        var events = await DecodeAsync("stream_json_schema.sse", jsonToolName: "city_answer");

        Assert.DoesNotContain(events, e => !e.UsageOnly && e.Delta.TryGetProperty("tool_calls", out _));
        Assert.Equal("""{"city": "Lyon"}""", Content(events));
        Assert.Equal("stop", events[^2].FinishReason);
    }

    [Fact]
    public async Task Decode_JsonSchemaToolNotExpected_StaysAToolCall()
    {
        var events = await DecodeAsync("stream_json_schema.sse");
        Assert.Contains(events, e => !e.UsageOnly && e.Delta.TryGetProperty("tool_calls", out _));
        Assert.Equal("tool_calls", events[^2].FinishReason);
    }

    [Fact]
    public void TryDecode_NotJson_IsAnUnusableAnswer()
    {
        var decoder = new AnthropicStreamDecoder("claude", "k", 0, "m", null);
        Assert.True(decoder.TryDecode("message_start"u8, "<html>"u8, out var result));
        Assert.Equal(StreamEventKind.Error, result.Kind);
        Assert.Equal(FailureClass.Transient, result.Failure!.Class);
    }

    [Fact]
    public void TryDecode_UnknownEventTypes_AreIgnored()
    {
        var decoder = new AnthropicStreamDecoder("claude", "k", 0, "m", null);
        Assert.True(decoder.TryDecode("message_start"u8, """{"type":"message_start","message":{"id":"msg_1","model":"c","usage":{"input_tokens":3}}}"""u8, out _));
        Assert.False(decoder.TryDecode("brand_new"u8, """{"type":"brand_new","x":[1,{"y":2}]}"""u8, out _));
        Assert.False(decoder.TryDecode("content_block_delta"u8, """{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"x"}}}"""u8, out _));
        Assert.True(decoder.TryDecode("message_stop"u8, """{"type":"message_stop"}"""u8, out var finish));
        Assert.True(finish.HasContent);
        Assert.True(decoder.TryTakePending(out var usage));
        Assert.Equal(new Usage(3, 0), usage.Usage);
        Assert.False(decoder.TryTakePending(out _));
        Assert.True(decoder.Completed);
    }
}
