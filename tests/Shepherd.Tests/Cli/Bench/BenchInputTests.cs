namespace Shepherd.Tests.Cli.Bench;

using System.Text.Json.Nodes;
using Shepherd.Cli.Commands.Bench;

/// <summary>The URL and prompt a benchmark is given.</summary>
public sealed class BenchInputTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("shepherd-bench-input-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Theory]
    [InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1")]
    [InlineData("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1")]
    [InlineData("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1")]
    [InlineData("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1")]
    [InlineData("https://gw.example/relay", "https://gw.example/relay/v1")]
    public void NormalizeBaseUrl_WithOrWithoutV1_EndsInV1(string url, string expected)
    {
        Assert.Equal(expected, BenchSettings.NormalizeBaseUrl(url)!.AbsoluteUri);
    }

    [Theory]
    [InlineData("localhost:8080")]
    [InlineData("ftp://host/")]
    [InlineData("not a url")]
    [InlineData("http://host/?a=1")]
    public void NormalizeBaseUrl_NotAnHttpUrl_ReturnsNull(string url)
    {
        Assert.Null(BenchSettings.NormalizeBaseUrl(url));
    }

    [Fact]
    public void Load_TextFile_IsOneUserMessage()
    {
        var messages = Load("prompt.txt", "Summarise the plot of Hamlet.\n", out var error);

        Assert.Null(error);
        var message = Assert.Single(messages!.AsArray())!;
        Assert.Equal("user", message["role"]!.GetValue<string>());
        Assert.Equal("Summarise the plot of Hamlet.", message["content"]!.GetValue<string>());
    }

    [Fact]
    public void Load_JsonArray_IsTheMessages()
    {
        var messages = Load("prompt.json", """[ { "role": "system", "content": "Be brief." }, { "role": "user", "content": "Hi" } ]""", out var error);

        Assert.Null(error);
        Assert.Equal(2, messages!.AsArray().Count);
        Assert.Equal("system", messages[0]!["role"]!.GetValue<string>());
    }

    [Fact]
    public void Load_RequestBodyObject_TakesItsMessages()
    {
        var messages = Load("body.json", """{ "model": "x", "temperature": 0, "messages": [ { "role": "user", "content": "Hi" } ] }""", out var error);

        Assert.Null(error);
        Assert.Equal("Hi", messages![0]!["content"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("bad.json", "{ not json")]
    [InlineData("empty.json", "[]")]
    [InlineData("object.json", """{ "prompt": "hi" }""")]
    [InlineData("blank.txt", "  \n")]
    public void Load_UnusableFile_ReportsAProblem(string name, string text)
    {
        var messages = Load(name, text, out var error);

        Assert.Null(messages);
        Assert.Contains(name, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFile_ReportsAProblem()
    {
        Assert.Null(BenchPrompt.Load(Path.Combine(_directory.FullName, "missing.txt"), out var error));
        Assert.Contains("cannot read", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TextStartingWithABracket_IsPlainText()
    {
        var messages = Load("prompt.txt", "[draft] write a haiku", out var error);

        Assert.Null(error);
        Assert.Equal("[draft] write a haiku", messages![0]!["content"]!.GetValue<string>());
    }

    private JsonNode? Load(string name, string text, out string? error)
    {
        var path = Path.Combine(_directory.FullName, name);
        File.WriteAllText(path, text);
        var json = BenchPrompt.Load(path, out error);
        return json is null ? null : JsonNode.Parse(json);
    }
}
