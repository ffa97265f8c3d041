namespace Shepherd.Tests.Providers.Gemini;

using System.Text;
using Shepherd.Errors;
using Shepherd.Providers.Gemini;
using static Shepherd.Tests.Providers.Gemini.GeminiTranscripts;

/// <summary>Recorded Gemini error bodies → failure classes and what the client sees.</summary>
public sealed class GeminiErrorsTests
{
    private const string Key = "AIzaSyDu1mmyKey00000000000000000000000";

    [Theory]
    [InlineData("error-api-key-invalid.json", 400, FailureClass.BadCredential, 502)]
    [InlineData("error-permission.json", 403, FailureClass.BadCredential, 502)]
    [InlineData("error-resource-exhausted.json", 429, FailureClass.RateLimited, 429)]
    [InlineData("error-context-overflow.json", 400, FailureClass.ContextOverflow, 400)]
    [InlineData("error-signature-missing.json", 400, FailureClass.CallerFault, 400)]
    [InlineData("error-failed-precondition.json", 400, FailureClass.CallerFault, 400)]
    [InlineData("error-not-found.json", 404, FailureClass.CallerFault, 404)]
    [InlineData("error-unavailable.json", 503, FailureClass.Transient, 502)]
    [InlineData("error-deadline.json", 504, FailureClass.Timeout, 504)]
    [InlineData("error-proxy.html", 502, FailureClass.Transient, 502)]
    public void Classify_RecordedBodies_ClassAndClientStatus(string file, int status, FailureClass expected, int clientStatus)
    {
        var failure = GeminiErrors.Classify("gem", status, Bytes(file), null, Key);

        Assert.Equal(expected, failure.Class);
        Assert.Equal(status, failure.UpstreamStatus);
        Assert.Equal(clientStatus, failure.ToClientError().Status);
        Assert.False(string.IsNullOrWhiteSpace(failure.Message));
    }

    [Fact]
    public void Classify_ArrayWrappedResourceExhausted_RetryDelayFromRetryInfoBeatsHeader()
    {
        var failure = GeminiErrors.Classify("gem", 429, Bytes("error-resource-exhausted.json"), TimeSpan.FromSeconds(5), Key);

        Assert.Equal(TimeSpan.FromSeconds(17), failure.RetryAfter);
        Assert.StartsWith("You exceeded your current quota", failure.Message, StringComparison.Ordinal);
        var client = failure.ToClientError();
        Assert.Equal(TimeSpan.FromSeconds(17), client.RetryAfter);
        Assert.Equal("rate_limit_exceeded", client.Code);
    }

    [Fact]
    public void Classify_429WithoutRetryInfo_RetryAfterHeaderUsed()
    {
        var failure = GeminiErrors.Classify("gem", 429, Encoding.UTF8.GetBytes(FakeGeminiError(429, "RESOURCE_EXHAUSTED")), TimeSpan.FromSeconds(3), Key);
        Assert.Equal(FailureClass.RateLimited, failure.Class);
        Assert.Equal(TimeSpan.FromSeconds(3), failure.RetryAfter);
    }

    [Fact]
    public void Classify_ApiKeyInvalid_ClientSeesGatewayProblemNotOwnKey()
    {
        var error = GeminiErrors.Classify("gem", 400, Bytes("error-api-key-invalid.json"), null, Key).ToClientError();
        Assert.Equal(502, error.Status);
        Assert.Equal("upstream_auth_failed", error.Code);
    }

    [Fact]
    public void Classify_NotFound_ModelNotFoundCode()
    {
        var error = GeminiErrors.Classify("gem", 404, Bytes("error-not-found.json"), null, Key).ToClientError();
        Assert.Equal("model_not_found", error.Code);
        Assert.Equal("invalid_request_error", error.Type);
    }

    [Fact]
    public void Classify_MessageContainingTheKey_Scrubbed()
    {
        var body = FakeGeminiError(400, "INVALID_ARGUMENT", $"Key {Key} and AIzaSyOtherKey1234567890123456789012345 rejected.");
        var failure = GeminiErrors.Classify("gem", 400, Encoding.UTF8.GetBytes(body), null, Key);
        Assert.DoesNotContain("AIza", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("upstream connect error or disconnect/reset before headers")]
    [InlineData("{\"error\":42}")]
    public void Classify_NonGeminiBodies_StatusDecidesAndMessageIsSafe(string body)
    {
        var failure = GeminiErrors.Classify("gem", 500, Encoding.UTF8.GetBytes(body), null, Key);
        Assert.Equal(FailureClass.Transient, failure.Class);
        Assert.Contains("HTTP 500", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_ArrayWrappedError_Unwrapped()
    {
        var fields = GeminiErrors.Read(Bytes("error-resource-exhausted.json"));
        Assert.Equal(429, fields.Code);
        Assert.Equal("RESOURCE_EXHAUSTED", fields.Status);
        Assert.Equal(TimeSpan.FromSeconds(17), fields.RetryDelay);
    }

    [Fact]
    public void Read_ErrorInfo_ReasonFound()
    {
        var fields = GeminiErrors.Read(Bytes("error-api-key-invalid.json"));
        Assert.Equal("API_KEY_INVALID", fields.Reason);
        Assert.Equal("INVALID_ARGUMENT", fields.Status);
    }

    private static string FakeGeminiError(int code, string status, string message = "quota") =>
        $$$"""{"error":{"code":{{{code}}},"message":"{{{message}}}","status":"{{{status}}}"}}""";
}
