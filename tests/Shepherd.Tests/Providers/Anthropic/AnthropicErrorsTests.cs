namespace Shepherd.Tests.Providers.Anthropic;

using System.Text;
using Shepherd.Errors;
using Shepherd.Providers.Anthropic;
using static AnthropicTranscripts;

/// <summary>Anthropic error bodies (recorded) → classified failures → what the OpenAI client sees.</summary>
public sealed class AnthropicErrorsTests
{
    [Theory]
    [InlineData("error_overloaded_529.json", 529, FailureClass.RateLimited, 429)]
    [InlineData("error_rate_limit_429.json", 429, FailureClass.RateLimited, 429)]
    [InlineData("error_authentication_401.json", 401, FailureClass.BadCredential, 502)]
    [InlineData("error_permission_403.json", 403, FailureClass.BadCredential, 502)]
    [InlineData("error_prompt_too_long_400.json", 400, FailureClass.ContextOverflow, 400)]
    [InlineData("error_context_limit_400.json", 400, FailureClass.ContextOverflow, 400)]
    [InlineData("error_invalid_request_400.json", 400, FailureClass.CallerFault, 400)]
    [InlineData("error_not_found_404.json", 404, FailureClass.CallerFault, 404)]
    [InlineData("error_too_large_413.json", 413, FailureClass.CallerFault, 413)]
    [InlineData("error_billing_402.json", 402, FailureClass.RateLimited, 429)]
    [InlineData("error_api_500.json", 500, FailureClass.Transient, 502)]
    [InlineData("error_cloudflare_502.html", 502, FailureClass.Transient, 502)]
    public void Classify_RecordedErrorBody_GivesClassAndClientStatus(string transcript, int status, FailureClass expected, int clientStatus)
    {
        var failure = AnthropicErrors.Classify("claude", status, Bytes(transcript), null, "sk-ant-test");
        Assert.Equal(expected, failure.Class);
        Assert.Equal(status, failure.UpstreamStatus);
        Assert.Equal(clientStatus, failure.ToClientError().Status);
        Assert.False(string.IsNullOrWhiteSpace(failure.Message));
    }

    [Fact]
    public void Classify_UpstreamMessage_IsKeptForTheClient()
    {
        var failure = AnthropicErrors.Classify("claude", 400, Bytes("error_prompt_too_long_400.json"), null, "k");
        var error = failure.ToClientError();
        Assert.Equal("prompt is too long: 215320 tokens > 200000 maximum", error.Message);
        Assert.Equal("context_length_exceeded", error.Code);
        Assert.Equal("invalid_request_error", error.Type);
    }

    [Fact]
    public void Classify_NotFoundModel_CodeModelNotFound()
    {
        var error = AnthropicErrors.Classify("claude", 404, Bytes("error_not_found_404.json"), null, "k").ToClientError();
        Assert.Equal(404, error.Status);
        Assert.Equal("model_not_found", error.Code);
    }

    [Fact]
    public void Classify_RateLimitWithRetryAfter_CarriesIt()
    {
        var failure = AnthropicErrors.Classify("claude", 429, Bytes("error_rate_limit_429.json"), TimeSpan.FromSeconds(17), "k");
        Assert.Equal(TimeSpan.FromSeconds(17), failure.ToClientError().RetryAfter);
        Assert.Equal("rate_limit_error", failure.ToClientError().Type);
    }

    [Fact]
    public void Classify_OverloadedUnderAnotherStatus_StillRateLimited()
    {
        var failure = AnthropicErrors.Classify("claude", 503, Bytes("error_overloaded_529.json"), null, "k");
        Assert.Equal(FailureClass.RateLimited, failure.Class);
    }

    [Fact]
    public void Classify_HtmlBody_DescribedWithoutTheMarkup()
    {
        var failure = AnthropicErrors.Classify("claude", 502, Bytes("error_cloudflare_502.html"), null, "k");
        Assert.Contains("HTML page", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("<", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("upstream connect error or disconnect/reset before headers")]
    [InlineData("{\"type\":\"error\"")]
    [InlineData("[1,2,3]")]
    [InlineData("{\"error\":\"flat string\"}")]
    [InlineData("{\"message\":\"proxy says no\"}")]
    public void Classify_OddBodies_NeverThrowAndStillClassifyByStatus(string body)
    {
        var failure = AnthropicErrors.Classify("claude", 503, Encoding.UTF8.GetBytes(body), null, "k");
        Assert.Equal(FailureClass.Transient, failure.Class);
        Assert.False(string.IsNullOrWhiteSpace(failure.Message));
    }

    [Fact]
    public void Classify_KeyInUpstreamMessage_IsScrubbed()
    {
        const string Key = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv";
        var failure = AnthropicErrors.Classify("claude", 401, Bytes("error_leaky_key_401.json"), null, Key);
        Assert.DoesNotContain(Key, failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-ant-api03", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("overloaded_error", FailureClass.RateLimited)]
    [InlineData("rate_limit_error", FailureClass.RateLimited)]
    [InlineData("api_error", FailureClass.Transient)]
    [InlineData("invalid_request_error", FailureClass.Transient)]
    [InlineData("something_new", FailureClass.Transient)]
    public void ClassifyStreamError_ErrorEvent_ClassifiedByType(string type, FailureClass expected)
    {
        var data = Encoding.UTF8.GetBytes($$$"""{"type":"error","error":{"type":"{{{type}}}","message":"boom"}}""");
        Assert.Equal(expected, AnthropicErrors.ClassifyStreamError("claude", data, "k").Class);
    }
}
