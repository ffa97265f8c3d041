namespace Shepherd.Tests.Providers.OpenAI;

using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Providers.OpenAI;

public sealed class OpenAIWireTests
{
    private static OpenAIWire.ChunkInfo Chunk(string json) => OpenAIWire.InspectChunk(Encoding.UTF8.GetBytes(json));

    private static OpenAIWire.CompletionInfo Completion(string json) => OpenAIWire.InspectCompletion(Encoding.UTF8.GetBytes(json));

    private static Usage ReadUsage(string json)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json));
        reader.Read();
        return OpenAIWire.ReadUsage(ref reader);
    }

    [Fact]
    public void ReadUsage_CachedAndReasoningDetails_AreRead()
    {
        var usage = ReadUsage("""
            {"prompt_tokens":120,"completion_tokens":40,"total_tokens":160,
             "prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},
             "completion_tokens_details":{"reasoning_tokens":25,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}
            """);

        Assert.Equal(new Usage(120, 40, CachedTokens: 64, ReasoningTokens: 25), usage);
        Assert.Equal(160, usage.TotalTokens);
    }

    [Fact]
    public void ReadUsage_DeepSeekCacheHitTokens_CountAsCached()
    {
        var usage = ReadUsage("""{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,"prompt_cache_hit_tokens":80,"prompt_cache_miss_tokens":20}""");

        Assert.Equal(new Usage(100, 5, CachedTokens: 80), usage);
    }

    [Fact]
    public void ReadUsage_CachedTokensPreferredOverDeepSeekField()
    {
        var usage = ReadUsage("""{"prompt_tokens":100,"completion_tokens":5,"prompt_cache_hit_tokens":80,"prompt_tokens_details":{"cached_tokens":64}}""");

        Assert.Equal(64, usage.CachedTokens);
    }

    [Fact]
    public void ReadUsage_NullDetailsAndOddValues_AreTolerated()
    {
        var usage = ReadUsage("""{"prompt_tokens":10,"completion_tokens":-3,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null},"extra":{"nested":[1,2]}}""");

        Assert.Equal(new Usage(10, 0), usage);
    }

    [Fact]
    public void InspectChunk_RoleChunk_HasNoContent()
    {
        var info = Chunk("""{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}""");

        Assert.False(info.HasContent);
        Assert.False(info.HasFinish);
        Assert.Null(info.Usage);
        Assert.False(info.UsageOnly);
        Assert.False(info.IsError);
    }

    [Theory]
    [InlineData("""{"content":"Hi"}""")]
    [InlineData("""{"refusal":"No"}""")]
    [InlineData("""{"reasoning_content":"thinking"}""")]
    [InlineData("""{"reasoning":"thinking"}""")]
    [InlineData("""{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}""")]
    [InlineData("""{"function_call":{"name":"f"}}""")]
    public void InspectChunk_DeltaWithOutput_HasContent(string delta)
    {
        var info = Chunk($$"""{"id":"c","choices":[{"index":0,"delta":{{delta}},"finish_reason":null}]}""");

        Assert.True(info.HasContent);
        Assert.False(info.HasFinish);
    }

    [Fact]
    public void InspectChunk_FinishReason_CountsAsContent()
    {
        var info = Chunk("""{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}""");

        Assert.True(info.HasContent);
        Assert.True(info.HasFinish);
    }

    [Fact]
    public void InspectChunk_FinalUsageChunk_IsUsageOnly()
    {
        var info = Chunk("""{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":80,"completion_tokens":22,"total_tokens":102,"prompt_tokens_details":{"cached_tokens":8}}}""");

        Assert.True(info.UsageOnly);
        Assert.False(info.HasContent);
        Assert.Equal(new Usage(80, 22, CachedTokens: 8), info.Usage);
    }

    [Fact]
    public void InspectChunk_UsageOnAContentChunk_IsNotUsageOnly()
    {
        var info = Chunk("""{"id":"c","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}""");

        Assert.False(info.UsageOnly);
        Assert.True(info.HasContent);
        Assert.Equal(new Usage(3, 1), info.Usage);
    }

    [Fact]
    public void InspectChunk_EmptyChoicesWithoutUsage_IsNeitherContentNorUsage()
    {
        var info = Chunk("""{"id":"","choices":[],"prompt_filter_results":[{"prompt_index":0}]}""");

        Assert.False(info.HasContent);
        Assert.False(info.UsageOnly);
    }

    [Fact]
    public void InspectChunk_ErrorObject_IsError()
    {
        Assert.True(Chunk("""{"error":{"message":"boom","type":"server_error"}}""").IsError);
        Assert.False(Chunk("""{"id":"c","choices":[],"error":null}""").IsError);
    }

    [Theory]
    [InlineData("""{"id":"c","choices":[{"index":0,"delta":{"content":"x"}""")]
    [InlineData("not json")]
    [InlineData("""{"id":"c"} trailing""")]
    [InlineData("[1,2]")]
    [InlineData("42")]
    public void InspectChunk_Malformed_Throws(string json)
    {
        Assert.ThrowsAny<JsonException>(() => Chunk(json));
    }

    [Fact]
    public void InspectCompletion_ValidCompletion_ReadsUsage()
    {
        var info = Completion("""{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":1}}}""");

        Assert.True(info.IsValid);
        Assert.True(info.HasChoices);
        Assert.False(info.IsError);
        Assert.Equal(new Usage(5, 2, ReasoningTokens: 1), info.Usage);
    }

    [Fact]
    public void InspectCompletion_NoUsage_UsageIsNull()
    {
        var info = Completion("""{"id":"x","choices":[],"usage":null}""");

        Assert.True(info.IsValid);
        Assert.Null(info.Usage);
    }

    [Theory]
    [InlineData("""{"id":"x","choices":[]""")]
    [InlineData("""{"id":"x","choices":[]}{"id":"y"}""")]
    [InlineData("<html>bad gateway</html>")]
    [InlineData("")]
    public void InspectCompletion_TruncatedOrNotJson_IsInvalid(string json)
    {
        Assert.False(Completion(json).IsValid);
    }

    [Fact]
    public void InspectCompletion_ErrorBody_IsError()
    {
        var info = Completion("""{"error":{"message":"no","type":"invalid_request_error"}}""");

        Assert.True(info.IsError);
        Assert.False(info.HasChoices);
    }
}
