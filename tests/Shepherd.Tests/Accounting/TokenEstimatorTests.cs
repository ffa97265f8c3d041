namespace Shepherd.Tests.Accounting;

using System.Text;
using Microsoft.ML.Tokenizers;
using Shepherd.Accounting;

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
}
