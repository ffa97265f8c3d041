namespace Shepherd.Server.Streaming;

using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

/// <summary>Writes OpenAI-style SSE (<c>data: {json}\n\n</c>) straight into the response pipe.</summary>
public static class SseWriter
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] DoneEvent = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>Sends the stream's status and headers; from here on only in-band errors are possible.</summary>
    public static void Start(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    /// <summary>Appends one event; <see cref="FlushAsync"/> sends it.</summary>
    public static void WriteData(PipeWriter writer, ReadOnlySpan<byte> json)
    {
        var length = DataPrefix.Length + json.Length + EventEnd.Length;
        var span = writer.GetSpan(length);
        DataPrefix.CopyTo(span);
        json.CopyTo(span[DataPrefix.Length..]);
        EventEnd.CopyTo(span[(DataPrefix.Length + json.Length)..]);
        writer.Advance(length);
    }

    public static void WriteDone(PipeWriter writer) => writer.Write(DoneEvent);

    public static ValueTask<FlushResult> FlushAsync(PipeWriter writer, CancellationToken cancellationToken) => writer.FlushAsync(cancellationToken);
}
