namespace Shepherd.Tests.Providers.Gemini;

using System.Text;
using System.Text.Json.Nodes;
using Shepherd.Chat;

/// <summary>Recorded Gemini bodies and streams under <c>Transcripts/gemini</c>.</summary>
internal static class GeminiTranscripts
{
    public static string Read(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Transcripts", "gemini", name));

    public static byte[] Bytes(string name) => Encoding.UTF8.GetBytes(Read(name));

    /// <summary>Parses an OpenAI request the way the gateway does.</summary>
    public static ChatRequest Request(string json)
    {
        var request = ChatRequestParser.Parse(Encoding.UTF8.GetBytes(json), out var error);
        Assert.True(request is not null, error?.Message);
        return request!;
    }

    public static void AssertJsonEqual(string expected, string actual)
    {
        var e = JsonNode.Parse(expected);
        var a = JsonNode.Parse(actual);
        Assert.True(JsonNode.DeepEquals(e, a), $"Expected:\n{e?.ToJsonString()}\nActual:\n{a?.ToJsonString()}");
    }
}
