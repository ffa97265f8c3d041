namespace Shepherd.Tests.Providers.OpenAI;

using System.Text;
using Shepherd.Errors;
using Shepherd.Providers.OpenAI;

public sealed class OpenAIErrorsTests
{
    private static UpstreamFailure Classify(int status, string body, string key = "sk-upstream-secret-1") =>
        OpenAIErrors.Classify("up", status, Encoding.UTF8.GetBytes(body), null, key);

    [Fact]
    public void Classify_OpenAIEnvelope_FieldsKept()
    {
        var failure = Classify(400, """{"error":{"message":"Invalid value for 'n'.","type":"invalid_request_error","param":"n","code":"invalid_value"}}""");

        Assert.Equal(new UpstreamFailure(FailureClass.CallerFault, 400, "Invalid value for 'n'.", "invalid_request_error", "invalid_value", "n"), failure);
    }

    [Fact]
    public void Classify_VllmFlatBody_TypeAndIntegerCodeDropped()
    {
        var failure = Classify(400, """{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}""");

        Assert.Equal(FailureClass.CallerFault, failure.Class);
        Assert.Equal("bad", failure.Message);
        Assert.Null(failure.Type);
        Assert.Null(failure.Code);
        Assert.Equal("invalid_request_error", failure.ToClientError().Type);
    }

    [Fact]
    public void Classify_StringError_MessageKept()
    {
        var failure = Classify(500, """{"error":"model runner crashed"}""");

        Assert.Equal(FailureClass.Transient, failure.Class);
        Assert.Equal("model runner crashed", failure.Message);
    }

    [Fact]
    public void Classify_ArrayWrappedError_Read()
    {
        var failure = Classify(429, """[{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}]""");

        Assert.Equal(FailureClass.RateLimited, failure.Class);
        Assert.Equal("quota", failure.Message);
    }

    [Fact]
    public void Classify_InsufficientQuotaOn400_RateLimited()
    {
        Assert.Equal(FailureClass.RateLimited, Classify(400, """{"error":{"message":"no credit","type":"insufficient_quota","code":null}}""").Class);
    }

    [Fact]
    public void Classify_ContextOverflow_Recognised()
    {
        var failure = Classify(400, """{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}""");

        Assert.Equal(FailureClass.ContextOverflow, failure.Class);
        Assert.Equal("context_length_exceeded", failure.ToClientError().Code);
    }

    [Theory]
    [InlineData("", "with an empty body")]
    [InlineData("<!DOCTYPE html><html><body>Bad gateway</body></html>", "with an HTML page")]
    [InlineData("  \n<html>oops</html>", "with an HTML page")]
    [InlineData("upstream connect error or disconnect/reset before headers", ": upstream connect error or disconnect/reset before headers")]
    public void Classify_NonJsonBody_CleanMessage(string body, string expectedEnding)
    {
        var failure = Classify(503, body);

        Assert.Equal($"The upstream provider 'up' answered HTTP 503 {expectedEnding}.".Replace(" :", ":", StringComparison.Ordinal), failure.Message);
        Assert.Equal(FailureClass.Transient, failure.Class);
    }

    [Fact]
    public void Classify_MessageEchoingKey_Scrubbed()
    {
        var failure = Classify(401, """{"error":{"message":"Incorrect API key provided: my-local-secret.","type":"invalid_request_error","code":"invalid_api_key"}}""", key: "my-local-secret");

        Assert.Equal("Incorrect API key provided: ***.", failure.Message);
        Assert.Equal(FailureClass.BadCredential, failure.Class);
    }

    [Fact]
    public void Classify_PlainTextEchoingKey_Scrubbed()
    {
        var failure = Classify(500, "invalid bearer sk-upstream-secret-1 for route");

        Assert.DoesNotContain("sk-upstream-secret-1", failure.Message, StringComparison.Ordinal);
    }
}
