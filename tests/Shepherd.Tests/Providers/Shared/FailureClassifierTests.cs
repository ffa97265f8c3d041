namespace Shepherd.Tests.Providers.Shared;

using System.Net.Http.Headers;
using Shepherd.Errors;
using Shepherd.Providers.Shared;

public sealed class FailureClassifierTests
{
    [Theory]
    [InlineData(400, FailureClass.CallerFault)]
    [InlineData(404, FailureClass.CallerFault)]
    [InlineData(413, FailureClass.CallerFault)]
    [InlineData(422, FailureClass.CallerFault)]
    [InlineData(401, FailureClass.BadCredential)]
    [InlineData(403, FailureClass.BadCredential)]
    [InlineData(402, FailureClass.RateLimited)]
    [InlineData(429, FailureClass.RateLimited)]
    [InlineData(529, FailureClass.RateLimited)]
    [InlineData(408, FailureClass.Transient)]
    [InlineData(409, FailureClass.Transient)]
    [InlineData(500, FailureClass.Transient)]
    [InlineData(502, FailureClass.Transient)]
    [InlineData(503, FailureClass.Transient)]
    [InlineData(504, FailureClass.Transient)]
    [InlineData(301, FailureClass.Transient)]
    [InlineData(307, FailureClass.Transient)]
    public void FromStatus_MapsToFailureClass(int status, FailureClass expected)
    {
        Assert.Equal(expected, FailureClassifier.FromStatus(status));
    }

    [Theory]
    [InlineData("context_length_exceeded", null, true)]
    [InlineData(null, "This model's maximum context length is 8192 tokens.", true)]
    [InlineData(null, "prompt is too long: 210000 tokens > 200000 maximum", true)]
    [InlineData(null, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", true)]
    [InlineData("invalid_value", "temperature is out of range", false)]
    public void LooksLikeContextOverflow_KnownWordings(string? code, string? message, bool expected)
    {
        Assert.Equal(expected, FailureClassifier.LooksLikeContextOverflow(code, message));
    }

    [Fact]
    public void ConnectFailure_DescribesSocketErrorOnly()
    {
        var ex = new HttpRequestException("Connection refused (127.0.0.1:1234)", new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused));

        var failure = FailureClassifier.ConnectFailure("p", ex);

        Assert.Equal(FailureClass.Transient, failure.Class);
        Assert.Contains("ConnectionRefused", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", failure.Message, StringComparison.Ordinal);
        Assert.Equal(502, failure.ToClientError().Status);
    }

    [Fact]
    public void ConnectFailure_ConnectTimeout_Described()
    {
        var failure = FailureClassifier.ConnectFailure("p", new TaskCanceledException("The operation was canceled.", new TimeoutException("A connection could not be established within the configured ConnectTimeout.")));

        Assert.Contains("connect timeout", failure.Message, StringComparison.Ordinal);
        Assert.Equal("upstream_unreachable", failure.ToClientError().Code);
    }

    [Fact]
    public void RetryAfter_PrefersMilliseconds()
    {
        using var response = new HttpResponseMessage();
        response.Headers.TryAddWithoutValidation("retry-after-ms", "250");
        response.Headers.TryAddWithoutValidation("retry-after", "9");

        Assert.Equal(TimeSpan.FromMilliseconds(250), RetryAfter.From(response.Headers, DateTimeOffset.UnixEpoch));
    }

    [Fact]
    public void RetryAfter_SecondsOrHttpDate()
    {
        var now = new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
        using var seconds = new HttpResponseMessage();
        seconds.Headers.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(20));
        using var date = new HttpResponseMessage();
        date.Headers.RetryAfter = new RetryConditionHeaderValue(now.AddSeconds(30));
        using var none = new HttpResponseMessage();

        Assert.Equal(TimeSpan.FromSeconds(20), RetryAfter.From(seconds.Headers, now));
        Assert.Equal(TimeSpan.FromSeconds(30), RetryAfter.From(date.Headers, now));
        Assert.Null(RetryAfter.From(none.Headers, now));
    }

    [Theory]
    [InlineData("Incorrect API key provided: sk-abc123def456ghi.", "Incorrect API key provided: ***.")]
    [InlineData("key sk-proj-AbC_d-EfGhIjKl rejected", "key *** rejected")]
    [InlineData("key sk-abc1****************wxyz rejected", "key *** rejected")]
    [InlineData("API key not valid: AIzaSyA1234567890abcdefghijklmnop", "API key not valid: ***")]
    [InlineData("custom-token-42 is wrong", "*** is wrong")]
    [InlineData("nothing secret here", "nothing secret here")]
    public void SecretScrubber_RemovesKeys(string message, string expected)
    {
        Assert.Equal(expected, SecretScrubber.Scrub(message, "custom-token-42"));
    }
}
