namespace Shepherd.Server.Admin;

using Microsoft.AspNetCore.Http;

/// <summary>Serves the hand-written OpenAPI document of the admin API (kept beside the code it describes).</summary>
public static class AdminOpenApi
{
    private static readonly Lazy<byte[]> Document = new(() =>
    {
        using var stream = typeof(AdminOpenApi).Assembly.GetManifestResourceStream("Shepherd.Admin.openapi.json")!;
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    public static Task WriteAsync(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = Document.Value.Length;
        return context.Response.Body.WriteAsync(Document.Value).AsTask();
    }
}
