namespace Shepherd.Tests.Providers.OpenAI;

using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Providers.OpenAI;
using Shepherd.Providers.Shared;

public sealed class OpenAIRequestRewriterTests
{
    private static ChatRequest Parse(string json)
    {
        var request = ChatRequestParser.Parse(Encoding.UTF8.GetBytes(json), out var error);
        Assert.True(request is not null, error?.Message);
        return request!;
    }

    private static string Rewrite(string json, string model = "upstream-model", bool developerAsSystem = false)
    {
        var request = Parse(json);
        using var output = new PooledBuffer(64);
        OpenAIRequestRewriter.Write(request, JsonSerializer.SerializeToUtf8Bytes(model), developerAsSystem, output);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    [Fact]
    public void Write_NonStreamed_OnlyModelChangesAndEveryOtherByteIsKept()
    {
        const string body = """{ "top_k" : 5 ,"model":"gpt-test", "messages":[{"role":"user","content":"h\u00e9llo \"q\"","x":1.50e2}],"x_custom":{"a":[1, 2 ,3]},"temperature":0.70}""";

        var written = Rewrite(body);

        Assert.Equal(body.Replace("\"gpt-test\"", "\"upstream-model\"", StringComparison.Ordinal), written);
    }

    [Theory]
    [InlineData("quote\"and\\backslash")]
    [InlineData("ünïcödé/模型")]
    [InlineData("line\nbreak\u0001")]
    public void Write_ModelWithCharactersToEscape_IsValidJsonWithThatModel(string model)
    {
        var written = Rewrite("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", model);

        using var document = JsonDocument.Parse(written);
        Assert.Equal(model, document.RootElement.GetProperty("model").GetString());
    }

    [Fact]
    public void Write_ClientModelWithEscapes_WholeTokenReplaced()
    {
        var written = Rewrite("""{"model":"gpt\u002dtest\"x","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal("""{"model":"upstream-model","messages":[{"role":"user","content":"hi"}]}""", written);
    }

    [Fact]
    public void Write_StreamWithoutOptions_IncludeUsageInserted()
    {
        const string body = """{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"zz":true}""";

        var written = Rewrite(body);

        Assert.Equal("""{"stream_options":{"include_usage":true},"model":"upstream-model","stream":true,"messages":[{"role":"user","content":"hi"}],"zz":true}""", written);
    }

    [Fact]
    public void Write_StreamWithIncludeUsage_LeftAsIs()
    {
        const string body = """{"model":"m","stream":true,"stream_options":{ "include_usage" : true },"messages":[{"role":"user","content":"hi"}]}""";

        Assert.Equal(body.Replace("\"m\"", "\"upstream-model\"", StringComparison.Ordinal), Rewrite(body));
    }

    [Theory]
    [InlineData("""{"include_usage":false}""", """{"include_usage":true}""")]
    [InlineData("""{"include_obfuscation":false}""", """{"include_obfuscation":false,"include_usage":true}""")]
    [InlineData("""{"include_usage":false,"include_obfuscation":false,"x":{"y":[1]}}""", """{"include_obfuscation":false,"x":{"y":[1]},"include_usage":true}""")]
    [InlineData("null", """{"include_usage":true}""")]
    public void Write_StreamOptionsWithoutUsage_MergedKeepingOtherMembers(string options, string expected)
    {
        var written = Rewrite($$"""{"messages":[{"role":"user","content":"hi"}],"stream_options":{{options}},"stream":true,"model":"m"}""");

        Assert.Equal($$"""{"messages":[{"role":"user","content":"hi"}],"stream_options":{{expected}},"stream":true,"model":"upstream-model"}""", written);
    }

    [Fact]
    public void Write_NotStreamed_NoStreamOptionsAdded()
    {
        var written = Rewrite("""{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.DoesNotContain("stream_options", written, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_DeveloperRole_RenamedOnlyWhenAsked()
    {
        const string body = """{"model":"m","messages":[{"role":"developer","content":"be terse, developer"},{"content":"hi","role" : "user"},{"role":"developer","content":[{"type":"text","text":"x"}]}],"metadata":{"role":"developer"}}""";

        var kept = Rewrite(body, developerAsSystem: false);
        var renamed = Rewrite(body, developerAsSystem: true);

        Assert.Equal(body.Replace("\"m\"", "\"upstream-model\"", StringComparison.Ordinal), kept);
        Assert.Equal(
            """{"model":"upstream-model","messages":[{"role":"system","content":"be terse, developer"},{"content":"hi","role" : "user"},{"role":"system","content":[{"type":"text","text":"x"}]}],"metadata":{"role":"developer"}}""",
            renamed);
    }

    [Fact]
    public void Write_DeveloperRenameWithStreamAndUnknownFields_OtherBytesUntouched()
    {
        const string body = """{"model":"m","stream":true,"messages":[{"role":"developer","content":"a"},{"role":"user","content":"b","name":"n"}],"x":1.0e2,"x":"dup","top_k":  3}""";

        var written = Rewrite(body, developerAsSystem: true);

        Assert.Equal(
            """{"stream_options":{"include_usage":true},"model":"upstream-model","stream":true,"messages":[{"role":"system","content":"a"},{"role":"user","content":"b","name":"n"}],"x":1.0e2,"x":"dup","top_k":  3}""",
            written);
    }

    [Fact]
    public void Write_DeveloperRoleWrittenWithEscapes_StillRenamed()
    {
        var written = Rewrite("""{"model":"m","messages":[{"role":"develop\u0065r","content":"a"},{"role":"user","content":"b"}]}""", developerAsSystem: true);

        Assert.Equal("""{"model":"upstream-model","messages":[{"role":"system","content":"a"},{"role":"user","content":"b"}]}""", written);
    }

    [Theory]
    [InlineData(null, "https://api.openai.com/v1/chat/completions", false)]
    [InlineData(null, "https://myres.openai.azure.com/openai/chat/completions", false)]
    [InlineData(null, "https://api.deepseek.com/chat/completions", true)]
    [InlineData(null, "http://127.0.0.1:8000/v1/chat/completions", true)]
    [InlineData(null, "https://notopenai.com/v1/chat/completions", true)]
    [InlineData("keep", "http://127.0.0.1:8000/v1/chat/completions", false)]
    [InlineData("system", "https://api.openai.com/v1/chat/completions", true)]
    public void SendsDeveloperAsSystem_ByConfigThenHost(string? setting, string url, bool expected)
    {
        Assert.Equal(expected, OpenAIProvider.SendsDeveloperAsSystem(setting, new Uri(url)));
    }
}
