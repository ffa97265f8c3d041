namespace Shepherd.Cli.Commands;

using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

/// <summary>Calls the admin API of a running gateway with the master key from <c>SHEPHERD_MASTER_KEY</c>.</summary>
internal sealed class AdminClient : IDisposable
{
    public const string DefaultUrl = "http://127.0.0.1:8080";

    private readonly HttpClient _http;

    public AdminClient(string? url, string? masterKey, HttpMessageHandler? handler = null)
    {
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.BaseAddress = new Uri((url ?? Environment.GetEnvironmentVariable("SHEPHERD_URL") ?? DefaultUrl).TrimEnd('/') + "/");
        _http.Timeout = TimeSpan.FromSeconds(30);
        var key = masterKey ?? Environment.GetEnvironmentVariable("SHEPHERD_MASTER_KEY");
        if (!string.IsNullOrEmpty(key))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
    }

    public Task<JsonNode> GetAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, path, null, cancellationToken);

    public Task<JsonNode> PostAsync(string path, JsonNode? body, CancellationToken cancellationToken) => SendAsync(HttpMethod.Post, path, body, cancellationToken);

    public Task<JsonNode> PatchAsync(string path, JsonNode body, CancellationToken cancellationToken) => SendAsync(HttpMethod.Patch, path, body, cancellationToken);

    /// <summary>GETs a text answer (e.g. CSV) as it is; errors are read from the JSON error body like every other call.</summary>
    public async Task<string> GetTextAsync(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path.TrimStart('/'));
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new AdminApiException($"cannot reach the gateway at {_http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                string? message = null;
                try
                {
                    message = JsonNode.Parse(text)?["error"]?["message"]?.GetValue<string>();
                }
                catch (JsonException)
                {
                }

                throw new AdminApiException($"{(int)response.StatusCode}: {message ?? $"HTTP {(int)response.StatusCode}"}");
            }

            return text;
        }
    }

    private async Task<JsonNode> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new AdminApiException($"cannot reach the gateway at {_http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            JsonNode? json;
            try
            {
                json = string.IsNullOrWhiteSpace(text) ? new JsonObject() : JsonNode.Parse(text);
            }
            catch (JsonException)
            {
                throw new AdminApiException($"the gateway answered {(int)response.StatusCode} with a body that is not JSON");
            }

            if (!response.IsSuccessStatusCode)
            {
                var message = json?["error"]?["message"]?.GetValue<string>() ?? $"HTTP {(int)response.StatusCode}";
                throw new AdminApiException($"{(int)response.StatusCode}: {message}");
            }

            return json ?? new JsonObject();
        }
    }

    public void Dispose() => _http.Dispose();
}

internal sealed class AdminApiException(string message) : Exception(message);
