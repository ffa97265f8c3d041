namespace Shepherd.Tests.Providers.Anthropic;

using System.Buffers;
using System.Text;
using System.Text.Json.Nodes;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers;
using Shepherd.Providers.Anthropic;

/// <summary>Recorded Anthropic wire transcripts (<c>Transcripts/anthropic</c>) and the helpers that feed them to the mapping.</summary>
internal static class AnthropicTranscripts
{
    public const string UpstreamModel = "claude-sonnet-4-5";

    public static string Path(string name) => System.IO.Path.Combine(AppContext.BaseDirectory, "Transcripts", "anthropic", name);

    public static string Text(string name) => File.ReadAllText(Path(name));

    public static byte[] Bytes(string name) => File.ReadAllBytes(Path(name));

    public static JsonNode Json(string name) => JsonNode.Parse(Text(name))!;

    public static ChatRequest Parse(string openAIJson)
    {
        var request = ChatRequestParser.Parse(Encoding.UTF8.GetBytes(openAIJson), out var error);
        Assert.True(request is not null, error?.Message);
        return request!;
    }

    /// <summary>Translates an OpenAI request; fails the test if the mapping refused it.</summary>
    public static JsonNode Translate(string openAIJson, out string? jsonToolName, int defaultMaxOutputTokens = 4096)
    {
        var failure = TryTranslate(openAIJson, out var body, out jsonToolName, defaultMaxOutputTokens);
        Assert.True(failure is null, failure?.Message);
        return body!;
    }

    public static JsonNode Translate(string openAIJson) => Translate(openAIJson, out _);

    public static UpstreamFailure? TryTranslate(string openAIJson, out JsonNode? body, out string? jsonToolName, int defaultMaxOutputTokens = 4096)
    {
        var request = Parse(openAIJson);
        var buffer = new ArrayBufferWriter<byte>();
        var failure = AnthropicMapping.WriteRequest(new UpstreamCall(request, UpstreamModel, "sk-ant-test", defaultMaxOutputTokens), request.Stream, buffer, out jsonToolName);
        body = failure is null ? JsonNode.Parse(buffer.WrittenSpan) : null;
        return failure;
    }

    public static void AssertJsonEqual(JsonNode expected, JsonNode actual) =>
        Assert.True(JsonNode.DeepEquals(expected, actual), $"Expected:\n{expected.ToJsonString()}\nActual:\n{actual.ToJsonString()}");
}
