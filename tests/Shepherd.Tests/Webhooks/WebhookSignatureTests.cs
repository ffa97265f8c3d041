namespace Shepherd.Tests.Webhooks;

using System.Security.Cryptography;
using System.Text;
using Shepherd.Webhooks.Verification;

/// <summary>HMAC-SHA256 over the exact raw bytes, with or without a signed timestamp, any of several secrets.</summary>
public sealed class WebhookSignatureTests
{
    private static readonly byte[] Body = """{"event_type":"agent.completed","data":{"x":1}}"""u8.ToArray();
    private static readonly byte[] Current = Encoding.UTF8.GetBytes("whsec-current-0123456789");
    private static readonly byte[] Old = Encoding.UTF8.GetBytes("whsec-previous-0123456789");

    private static string Hex(byte[] secret, byte[] payload) => Convert.ToHexStringLower(HMACSHA256.HashData(secret, payload));

    [Fact]
    public void Sign_IsTheHmacOfTheRawBody_AsOpenSslComputesIt()
    {
        // printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET"
        Assert.Equal("sha256=" + Hex(Current, Body), WebhookSignature.Sign(Current, null, Body));
    }

    [Fact]
    public void Sign_WithTimestamp_SignsTimestampDotBody()
    {
        var signed = Encoding.UTF8.GetBytes("1767261600.").Concat(Body).ToArray();

        Assert.Equal("sha256=" + Hex(Current, signed), WebhookSignature.Sign(Current, "1767261600", Body));
    }

    [Theory]
    [InlineData("sha256={0}", true)]
    [InlineData("{0}", true)]
    [InlineData("SHA256={0}", true)]
    [InlineData("  sha256={0}  ", true)]
    [InlineData("sha256=0000000000000000000000000000000000000000000000000000000000000000, sha256={0}", true)]
    [InlineData("sha1={0}", false)]
    [InlineData("sha256={0}00", false)]
    [InlineData("", false)]
    [InlineData("sha256=", false)]
    public void Verify_HeaderForms(string format, bool valid)
    {
        var header = string.Format(System.Globalization.CultureInfo.InvariantCulture, format, Hex(Current, Body));

        Assert.Equal(valid, WebhookSignature.Verify(Body, null, header, [Current]));
    }

    [Fact]
    public void Verify_UppercaseHex_Accepted()
    {
        Assert.True(WebhookSignature.Verify(Body, null, Hex(Current, Body).ToUpperInvariant(), [Current]));
    }

    [Fact]
    public void Verify_RotationAnyConfiguredSecret_WrongSecretRefused()
    {
        Assert.True(WebhookSignature.Verify(Body, null, WebhookSignature.Sign(Old, null, Body), [Current, Old]));
        Assert.False(WebhookSignature.Verify(Body, null, WebhookSignature.Sign(Old, null, Body), [Current]));
        Assert.False(WebhookSignature.Verify(Body, null, WebhookSignature.Sign("other"u8.ToArray(), null, Body), [Current, Old]));
    }

    [Fact]
    public void Verify_EveryByteOfTheBodyCounts()
    {
        var signature = WebhookSignature.Sign(Current, null, Body);
        for (var i = 0; i < Body.Length; i++)
        {
            var changed = (byte[])Body.Clone();
            changed[i] ^= 0x20;
            Assert.False(WebhookSignature.Verify(changed, null, signature, [Current]), $"byte {i}");
        }

        Assert.False(WebhookSignature.Verify([.. Body, (byte)' '], null, signature, [Current]));
    }

    [Fact]
    public void Verify_TimestampIsSigned_ChangingItBreaksTheSignature()
    {
        var signature = WebhookSignature.Sign(Current, "1767261600", Body);

        Assert.True(WebhookSignature.Verify(Body, "1767261600", signature, [Current]));
        Assert.False(WebhookSignature.Verify(Body, "1767261601", signature, [Current]));
        Assert.False(WebhookSignature.Verify(Body, null, signature, [Current]));
    }

    [Theory]
    [InlineData("1767261600", true)]
    [InlineData("1767261300", true)]
    [InlineData("1767261299", false)]
    [InlineData("1767261900", true)]
    [InlineData("1767261901", false)]
    [InlineData("-5", false)]
    [InlineData("1767261600.5", false)]
    [InlineData("99999999999999999999", false)]
    [InlineData("", false)]
    public void IsFresh_WithinToleranceEitherWay(string timestamp, bool fresh)
    {
        var now = DateTimeOffset.FromUnixTimeSeconds(1767261600);

        Assert.Equal(fresh, WebhookSignature.IsFresh(timestamp, now, TimeSpan.FromSeconds(300)));
    }
}
