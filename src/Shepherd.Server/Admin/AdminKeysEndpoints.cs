namespace Shepherd.Server.Admin;

using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Shepherd.Errors;
using Shepherd.Keys;
using Shepherd.Security;
using Shepherd.Server.Endpoints;
using Shepherd.Server.Http;

/// <summary>
/// <c>/admin/keys</c>: create, list, show, update, revoke and top up virtual keys, and read their usage.
/// Master key only. Documented in docs/admin-api.md and the OpenAPI document at <c>/admin/openapi.json</c>.
/// </summary>
public sealed class AdminKeysEndpoints(KeyService keys, ICallerAuthenticator authenticator, TimeProvider time, long maxBodyBytes)
{
    public async Task CreateAsync(HttpContext context)
    {
        if (!await AuthorizeAsync(context))
        {
            return;
        }

        await HandleAsync(context, async root =>
        {
            var (entry, secret) = await keys.CreateAsync(KeyJson.ReadPatch(root), context.RequestAborted);
            await ModelsEndpoints.WriteJsonAsync(context, w => KeyJson.WriteKey(w, entry, time.GetUtcNow(), secret), StatusCodes.Status201Created);
        });
    }

    public async Task ListAsync(HttpContext context)
    {
        if (!await AuthorizeAsync(context))
        {
            return;
        }

        var now = time.GetUtcNow();
        var entries = keys.Registry.All.OrderBy(e => e.Record.CreatedAt).ThenBy(e => e.Id, StringComparer.Ordinal).ToArray();
        var live = await Task.WhenAll(entries.Select(e => keys.LiveAsync(e, context.RequestAborted)));
        await ModelsEndpoints.WriteJsonAsync(context, w =>
        {
            w.WriteStartObject();
            w.WriteString("object"u8, "list"u8);
            w.WriteStartArray("data"u8);
            for (var i = 0; i < entries.Length; i++)
            {
                KeyJson.WriteKey(w, entries[i], now, shared: live[i]);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        if (!await AuthorizeAsync(context) || await FindAsync(context, id) is not { } entry)
        {
            return;
        }

        var live = await keys.LiveAsync(entry, context.RequestAborted);
        await ModelsEndpoints.WriteJsonAsync(context, w => KeyJson.WriteKey(w, entry, time.GetUtcNow(), shared: live));
    }

    public async Task UsageAsync(HttpContext context, string id)
    {
        if (!await AuthorizeAsync(context) || await FindAsync(context, id) is not { } entry)
        {
            return;
        }

        // Across every instance when state is shared (Redis), else this instance's counters.
        var live = await keys.LiveAsync(entry, context.RequestAborted);
        await ModelsEndpoints.WriteJsonAsync(context, w => KeyJson.WriteUsage(w, entry, live));
    }

    public async Task UpdateAsync(HttpContext context, string id)
    {
        if (!await AuthorizeAsync(context) || await FindAsync(context, id) is null)
        {
            return;
        }

        await HandleAsync(context, async root =>
        {
            var entry = await keys.UpdateAsync(id, KeyJson.ReadPatch(root), context.RequestAborted);
            await ModelsEndpoints.WriteJsonAsync(context, w => KeyJson.WriteKey(w, entry, time.GetUtcNow()));
        });
    }

    public async Task RevokeAsync(HttpContext context, string id)
    {
        if (!await AuthorizeAsync(context) || await FindAsync(context, id) is null)
        {
            return;
        }

        var entry = await keys.RevokeAsync(id, context.RequestAborted);
        await ModelsEndpoints.WriteJsonAsync(context, w => KeyJson.WriteKey(w, entry, time.GetUtcNow()));
    }

    public async Task TopUpAsync(HttpContext context, string id)
    {
        if (!await AuthorizeAsync(context) || await FindAsync(context, id) is null)
        {
            return;
        }

        await HandleAsync(context, async root =>
        {
            var balance = await keys.TopUpAsync(id, KeyJson.ReadAmount(root), context.RequestAborted);
            await ModelsEndpoints.WriteJsonAsync(context, w =>
            {
                w.WriteStartObject();
                w.WriteString("id"u8, id);
                w.WriteNumber("credit_balance"u8, balance);
                w.WriteEndObject();
            });
        });
    }

    /// <summary>Only the master key may use the admin API; anything else is 401 (constant-time comparison inside).</summary>
    internal async Task<bool> AuthorizeAsync(HttpContext context)
    {
        var result = authenticator.Authenticate(Auth.BearerToken.From(context.Request));
        if (result.Caller is { IsMaster: true } caller)
        {
            RequestContext.Get(context).Caller = caller;
            return true;
        }

        await ErrorResponses.WriteAsync(context, GatewayError.Unauthorized("The admin API requires the master key."));
        return false;
    }

    private async Task<KeyEntry?> FindAsync(HttpContext context, string id)
    {
        if (keys.Registry.TryGet(id, out var found))
        {
            return found;
        }

        await ErrorResponses.WriteAsync(context, GatewayError.NotFound($"No key with id '{(id.Length > 64 ? id[..64] : id)}'.", "key_not_found"));
        return null;
    }

    private async Task HandleAsync(HttpContext context, Func<JsonElement, Task> handle)
    {
        if (RequestBody.CheckContentType(context.Request) is { } contentType)
        {
            await ErrorResponses.WriteAsync(context, contentType);
            return;
        }

        var (body, error) = await RequestBody.ReadAsync(context.Request, Math.Min(maxBodyBytes, 1024 * 1024), context.RequestAborted);
        if (error is not null)
        {
            await ErrorResponses.WriteAsync(context, error);
            return;
        }

        using (body)
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(body!.WrittenMemory.Length == 0 ? "{}"u8.ToArray() : body.WrittenMemory);
            }
            catch (JsonException)
            {
                await ErrorResponses.WriteAsync(context, GatewayError.InvalidRequest("The request body is not valid JSON.", code: "invalid_json"));
                return;
            }

            using (document)
            {
                try
                {
                    await handle(document.RootElement);
                }
                catch (KeyValidationException ex)
                {
                    var first = ex.Errors[0];
                    await ErrorResponses.WriteAsync(context, GatewayError.InvalidRequest(
                        $"Invalid key settings: {string.Join("; ", ex.Errors)}.", first.Field, "invalid_value"));
                }
                catch (KeyNotFoundException)
                {
                    await ErrorResponses.WriteAsync(context, GatewayError.NotFound("No such key.", "key_not_found"));
                }
            }
        }
    }
}
