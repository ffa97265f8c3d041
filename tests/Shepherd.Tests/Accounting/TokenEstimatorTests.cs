namespace Shepherd.Tests.Accounting;

using System.Text;
using Microsoft.ML.Tokenizers;
using Shepherd.Accounting;
using Shepherd.Chat;

public sealed class TokenEstimatorTests
{
    private static readonly Tokenizer Library = TiktokenTokenizer.CreateForEncoding("o200k_base");

    public static TheoryData<string> Texts => new()
    {
        "Say hello to the benchmark in one short sentence.",
        "Hello! This is a fixed answer.\n\n  Indented   code:\r\n\tfoo(bar, 123456789);  ",
        "Grüße aus München — ça va? 日本語のテキストです。 Привет мир! 😀👍🏽",
        "I'm sure they'll've done it, WE'RE here; don't STOP",
        "   leading and trailing   ",
        "numbers 1234567 3.14159 and 0xDEADBEEF",
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}",
        "x",
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void Count_SameAsTheTokenizersOwnCount(string text)
    {
        Assert.Equal(Library.CountTokens(text), TokenEstimator.Default.Count(text.AsSpan()));
        Assert.Equal(Library.CountTokens(text), TokenEstimator.Default.Count(Encoding.UTF8.GetBytes(text).AsSpan()));
    }

    [Fact]
    public void Count_RandomMixedScriptText_SameAsTheTokenizersOwnCount()
    {
        // Letters of several cases and scripts, digits, contractions, punctuation runs, emoji and every kind of space.
        const string Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ  \n\n\r\t.,;:!?'\"0123456789äöüßÄÖÜ日本語😀👍🏽-_/\\()[]{}'s're";
        var random = new Random(20261122);
        for (var i = 0; i < 2000; i++)
        {
            var text = new string(Enumerable.Range(0, random.Next(1, 400)).Select(_ => Alphabet[random.Next(Alphabet.Length)]).ToArray());

            Assert.True(Library.CountTokens(text) == TokenEstimator.Default.Count(text.AsSpan()), text);
        }
    }

    [Fact]
    public void Count_Empty_Zero()
    {
        Assert.Equal(0, TokenEstimator.Default.Count(ReadOnlySpan<char>.Empty));
        Assert.Equal(0, TokenEstimator.Default.Count(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void Count_WordsSeenBefore_AllocatesNothing()
    {
        var text = Encoding.UTF8.GetBytes("Say hello to the benchmark in one short sentence. You are a helpful assistant.");
        TokenEstimator.Default.Count(text.AsSpan());

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            TokenEstimator.Default.Count(text.AsSpan());
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>
    /// The context window manager counts a truncated prompt as the whole minus the dropped messages, and that count
    /// is what usage falls back on when a provider reports none: it must equal counting the truncated request anew.
    /// </summary>
    [Fact]
    public void EstimatePrompt_WithoutSomeMessages_IsTheWholeMinusThoseMessages()
    {
        string[] messages =
        [
            """{"role":"system","content":"You are terse."}""",
            """{"role":"user","content":"Grüße aus München, what is 2+2?","name":"ana"}""",
            """{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"add","arguments":"{\"a\":2,\"b\":2}"}}]}""",
            """{"role":"tool","tool_call_id":"c1","content":"4"}""",
            """{"role":"user","content":[{"type":"text","text":"And 日本語?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}""",
        ];
        const string Tools = ""","tools":[{"type":"function","function":{"name":"add","parameters":{"type":"object"}}}]""";
        ChatRequest Request(IEnumerable<string> kept) =>
            ChatRequestParser.Parse(Encoding.UTF8.GetBytes($$"""{"model":"m","messages":[{{string.Join(",", kept)}}]{{Tools}}}"""), out _)!;

        var whole = TokenEstimator.Default.EstimatePrompt(Request(messages));
        for (var dropped = 1; dropped < messages.Length; dropped++)
        {
            var less = whole - messages[..dropped].Sum(m => TokenEstimator.Default.EstimateMessage(Encoding.UTF8.GetBytes(m)));

            Assert.Equal(TokenEstimator.Default.EstimatePrompt(Request(messages[dropped..])), less);
        }
    }
}
