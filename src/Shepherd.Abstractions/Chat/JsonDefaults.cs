namespace Shepherd.Chat;

using System.Text.Encodings.Web;
using System.Text.Json;

/// <summary>Writer options for every JSON Shepherd produces.</summary>
/// <remarks>Relaxed escaping writes <c>'</c>, <c>&lt;</c> and non-ASCII text as themselves (it is served as
/// <c>application/json</c>, never embedded in HTML); quotes, backslashes and control characters are still escaped.</remarks>
public static class JsonDefaults
{
    public static readonly JsonWriterOptions Writer = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = false };
}
