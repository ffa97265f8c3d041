namespace Shepherd.LoadTest;

using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

/// <summary>
/// A lean fake OpenAI-compatible upstream: fixed answers, no parsing beyond "is it a stream", so that it costs as
/// little CPU as possible and the numbers measure the gateway. Held streams send their first chunk and then wait.
/// </summary>
public sealed class BenchUpstream : IAsyncDisposable
{
    private static readonly byte[] Completion = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-bench","object":"chat.completion","created":1760000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":12,"total_tokens":24,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}""");

    private static readonly byte[][] StreamEvents = BuildStream();

    private readonly WebApplication _app;
    private TaskCompletionSource _releaseHeld = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private BenchUpstream(WebApplication app)
    {
        _app = app;
    }

    public string BaseUrl { get; private set; } = "";

    /// <summary>With TLS: a PEM file holding the upstream's self-signed certificate, for the gateway to trust (<c>SSL_CERT_FILE</c>).</summary>
    public string? CertificateFile { get; private set; }

    /// <param name="tls">Serve HTTPS with HTTP/2 offered (ALPN), as the cloud providers do; plain HTTP/1.1 otherwise.</param>
    public static async Task<BenchUpstream> StartAsync(bool tls = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        string? certificateFile = null;
        if (tls)
        {
            var certificate = SelfSignedLoopbackCertificate();
            s_certificateHash = certificate.GetCertHashString();
            certificateFile = Path.Combine(Path.GetTempPath(), $"shepherd-bench-upstream-{Environment.ProcessId}.pem");
            await File.WriteAllTextAsync(certificateFile, certificate.ExportCertificatePem());
            builder.WebHost.UseKestrelHttpsConfiguration();
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.AddServerHeader = false;
                k.Listen(IPAddress.Loopback, 0, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    listen.UseHttps(certificate);
                });
                // The gateway multiplexes held streams over few connections: let one carry them all.
                k.Limits.Http2.MaxStreamsPerConnection = 1000;
            });
        }
        else
        {
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        }

        var app = builder.Build();
        var upstream = new BenchUpstream(app);
        app.Run(upstream.HandleAsync);
        await app.StartAsync();
        upstream.BaseUrl = app.Urls.First() + "/v1";
        upstream.CertificateFile = certificateFile;
        return upstream;
    }

    private static string? s_certificateHash;

    /// <summary>Whether <paramref name="certificate"/> is the one a TLS bench upstream of this process serves.</summary>
    public static bool IsItsCertificate(X509Certificate? certificate) =>
        certificate is not null && s_certificateHash is { } hash && string.Equals(certificate.GetCertHashString(), hash, StringComparison.Ordinal);

    private static X509Certificate2 SelfSignedLoopbackCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));

        // Round-tripped through PKCS#12 so the private key is usable by the TLS stack on every platform.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null);
    }

    /// <summary>Lets every held stream finish.</summary>
    public void ReleaseHeldStreams() => Interlocked.Exchange(ref _releaseHeld, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private async Task HandleAsync(HttpContext context)
    {
        var body = await context.Request.BodyReader.ReadAsync();
        while (!body.IsCompleted)
        {
            context.Request.BodyReader.AdvanceTo(body.Buffer.Start, body.Buffer.End);
            body = await context.Request.BodyReader.ReadAsync();
        }

        var text = Encoding.UTF8.GetString(body.Buffer);
        context.Request.BodyReader.AdvanceTo(body.Buffer.End);
        var stream = text.Contains("\"stream\":true", StringComparison.Ordinal);
        var hold = text.Contains("\"hold\":true", StringComparison.Ordinal);
        var response = context.Response;
        if (!stream)
        {
            response.ContentType = "application/json";
            response.ContentLength = Completion.Length;
            await response.Body.WriteAsync(Completion);
            return;
        }

        response.ContentType = "text/event-stream";
        var sent = 0;
        if (hold)
        {
            // Held connections are not reused: a later round of held streams must open its own.
            response.Headers.Connection = "close";
            var release = Volatile.Read(ref _releaseHeld).Task;
            // The role chunk and the first word: the gateway commits a stream at its first content (before that it
            // may still retry elsewhere), so a held stream must have begun to be one the client holds open.
            await response.Body.WriteAsync(StreamEvents[0]);
            await response.Body.WriteAsync(StreamEvents[1]);
            await response.Body.FlushAsync();
            sent = 2;
            await release.WaitAsync(context.RequestAborted);
        }

        for (var i = sent; i < StreamEvents.Length; i++)
        {
            await response.Body.WriteAsync(StreamEvents[i]);
        }

        await response.Body.FlushAsync();
    }

    private static byte[][] BuildStream()
    {
        const string Head = "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1760000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":";
        var events = new List<string> { Head + "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}" };
        foreach (var word in "Hello! This is a fixed answer from the benchmark upstream.".Split(' '))
        {
            events.Add(Head + "{\"content\":\"" + word + " \"},\"logprobs\":null,\"finish_reason\":null}]}");
        }

        events.Add(Head + "{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}");
        events.Add("{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1760000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":12,\"total_tokens\":24}}");
        events.Add("[DONE]");
        return events.Select(e => Encoding.UTF8.GetBytes($"data: {e}\n\n")).ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        ReleaseHeldStreams();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
