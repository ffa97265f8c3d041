namespace Shepherd.Tests.Providers.Gemini;

using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers.Gemini;
using static Shepherd.Tests.Providers.Gemini.GeminiTranscripts;

/// <summary>Gemini <c>generateContent</c> answers → OpenAI <c>chat.completion</c>, against recorded JSON.</summary>
public sealed class GeminiMappingResponseTests
{
    private static (JsonElement Root, ChatCompletion Completion) Translate(string geminiJson)
    {
        var outcome = GeminiMapping.ToCompletion(Encoding.UTF8.GetBytes(geminiJson), "gem", "fallback-model", 1760000000, "AIzaSyTestKey0000000000000000000000000");
        Assert.True(outcome.IsSuccess, outcome.Failure?.Message);
        return (JsonDocument.Parse(outcome.Value!.Json).RootElement, outcome.Value);
    }

    [Fact]
    public void ToCompletion_TextWithThoughts_ContentReasoningAndUsageWithCacheAndThoughts()
    {
        var (root, completion) = Translate(Read("response-text.json"));

        Assert.Equal("chatcmpl-mXo2aP6kL", root.GetProperty("id").GetString());
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        Assert.Equal("gemini-2.5-flash", root.GetProperty("model").GetString());
        var choice = root.GetProperty("choices")[0];
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal("assistant", message.GetProperty("role").GetString());
        Assert.Equal("Hello, world.", message.GetProperty("content").GetString());
        Assert.Equal("The user wants a greeting.", message.GetProperty("reasoning_content").GetString());
        Assert.False(message.TryGetProperty("tool_calls", out _));

        // prompt = promptTokenCount + toolUsePromptTokenCount; completion = candidates + thoughts.
        Assert.Equal(new Usage(60, 58, CachedTokens: 32, ReasoningTokens: 40), completion.Usage);
        Assert.False(completion.UsageMissing);
        var usage = root.GetProperty("usage");
        Assert.Equal(118, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(32, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(40, usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public void ToCompletion_ParallelFunctionCalls_ToolCallsFinishAndSignatureInFirstId()
    {
        var (root, completion) = Translate(Read("response-parallel-calls.json"));

        var choice = root.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal("Checking both.", message.GetProperty("content").GetString());
        var calls = message.GetProperty("tool_calls");
        Assert.Equal(2, calls.GetArrayLength());
        Assert.All(calls.EnumerateArray(), c =>
        {
            Assert.Equal("function", c.GetProperty("type").GetString());
            Assert.Equal("get_weather", c.GetProperty("function").GetProperty("name").GetString());
            Assert.Matches("^call_[A-Za-z0-9_-]+$", c.GetProperty("id").GetString());
        });

        AssertJsonEqual("""{"city":"Paris"}""", calls[0].GetProperty("function").GetProperty("arguments").GetString()!);
        AssertJsonEqual("""{"city":"London","units":{"temp":"C"}}""", calls[1].GetProperty("function").GetProperty("arguments").GetString()!);
        Assert.Equal("+/+/c2lnLUEtZmlyc3QtY2FsbD4/", GeminiToolCallId.Signature(calls[0].GetProperty("id").GetString()));
        Assert.Null(GeminiToolCallId.Signature(calls[1].GetProperty("id").GetString()));
        Assert.NotEqual(calls[0].GetProperty("id").GetString(), calls[1].GetProperty("id").GetString());
        Assert.Equal(new Usage(40, 22), completion.Usage);
    }

    [Fact]
    public void ToCompletion_OnlyFunctionCall_ContentIsNull()
    {
        var (root, _) = Translate("""
            {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"f"}}]},"finishReason":"STOP"}]}
            """);

        var message = root.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        Assert.Equal("{}", message.GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString());
    }

    [Fact]
    public void ToCompletion_BlockedPrompt_ContentFilterWithEmptyContent()
    {
        var (root, completion) = Translate(Read("response-blocked.json"));

        var choice = root.GetProperty("choices").EnumerateArray().Single();
        Assert.Equal("content_filter", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(string.Empty, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(new Usage(9, 0), completion.Usage);
    }

    [Fact]
    public void ToCompletion_SeveralCandidates_ChoicesByIndexWithMappedFinish()
    {
        var (root, completion) = Translate(Read("response-two-candidates.json"));

        var choices = root.GetProperty("choices");
        Assert.Equal(3, choices.GetArrayLength());
        Assert.Equal([0, 1, 2], choices.EnumerateArray().Select(c => c.GetProperty("index").GetInt32()).ToArray());
        Assert.Equal("First.", choices[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choices[0].GetProperty("finish_reason").GetString());
        Assert.Equal("Second, cut short", choices[1].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("length", choices[1].GetProperty("finish_reason").GetString());
        Assert.Equal(string.Empty, choices[2].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("content_filter", choices[2].GetProperty("finish_reason").GetString());
        Assert.Equal("gemini-2.5-flash", root.GetProperty("model").GetString());
        Assert.StartsWith("chatcmpl-", root.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal(new Usage(5, 12), completion.Usage);
    }

    [Fact]
    public void ToCompletion_NoUsageMetadata_UsageMissing()
    {
        var (root, completion) = Translate("""{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}]}""");
        Assert.True(completion.UsageMissing);
        Assert.Equal("fallback-model", root.GetProperty("model").GetString());
    }

    [Theory]
    [InlineData("STOP", "stop")]
    [InlineData("MAX_TOKENS", "length")]
    [InlineData("SAFETY", "content_filter")]
    [InlineData("RECITATION", "content_filter")]
    [InlineData("BLOCKLIST", "content_filter")]
    [InlineData("PROHIBITED_CONTENT", "content_filter")]
    [InlineData("SPII", "content_filter")]
    [InlineData("LANGUAGE", "content_filter")]
    [InlineData("OTHER", "content_filter")]
    [InlineData("IMAGE_SAFETY", "content_filter")]
    [InlineData("MALFORMED_FUNCTION_CALL", "stop")]
    [InlineData("UNEXPECTED_TOOL_CALL", "stop")]
    [InlineData("TOO_MANY_TOOL_CALLS", "stop")]
    [InlineData("FINISH_REASON_UNSPECIFIED", "stop")]
    [InlineData(null, "stop")]
    public void FinishReason_GeminiValues_MappedToOpenAI(string? gemini, string openAI) =>
        Assert.Equal(openAI, GeminiMapping.FinishReason(gemini));

    [Theory]
    [InlineData("not json")]
    [InlineData("""{"candidates":[]}""")]
    [InlineData("""{"promptFeedback":{}}""")]
    [InlineData("[1,2]")]
    public void ToCompletion_UnusableAnswer_Transient(string body)
    {
        var outcome = GeminiMapping.ToCompletion(Encoding.UTF8.GetBytes(body), "gem", "m", 0, "k");
        Assert.Equal(FailureClass.Transient, outcome.Failure?.Class);
    }

    [Fact]
    public void ToCompletion_ErrorInsideA200_ClassifiedFailure()
    {
        var outcome = GeminiMapping.ToCompletion(Bytes("error-unavailable.json"), "gem", "m", 0, "k");
        Assert.Equal(FailureClass.Transient, outcome.Failure?.Class);
        Assert.Equal("The model is overloaded. Please try again later.", outcome.Failure?.Message);
    }
}
